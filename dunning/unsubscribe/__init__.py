"""The unsubscribe link of every dunning email: the token, the page and the opt-out.

Every email that is not a legally required notice carries a link
``<PORTAL_BASE_URL>unsubscribe/<token>/`` in its text and HTML footer and in the RFC 2369 /
RFC 8058 headers ``List-Unsubscribe`` and ``List-Unsubscribe-Post`` (see
:func:`list_unsubscribe_headers`), so mail programs show their own "unsubscribe" button.

* **The token** names a customer and a channel, signed with Django's signing and a salt of
  its own (a portal token does not work here, nor the other way round). It never expires
  (mail programs offer the button on old messages too) but is revocable: the admin's
  "Revoke the self-service links" (``PortalRevocation``) voids every link of the customer
  issued until then, and so does dropping the secret key from ``SECRET_KEY_FALLBACKS``.
* **GET** shows a small page with one button and changes nothing (mail scanners open every
  link). **POST** from that page (CSRF-protected) opts the customer out of the token's
  channel. A POST whose body is exactly ``List-Unsubscribe=One-Click`` (RFC 8058, posted
  by the mail provider, without a CSRF token) does the same without a page.
* **The opt-out** (:func:`opt_out`) appends ``Consent(topic="channel:<channel>",
  granted=False)`` to the consent log, only when the customer has not opted out already,
  and notes it on the open case's timeline (``consent``). The run then skips the steps on
  that channel, except legally required notices (``Step.required``).

The package is in three parts, one per layer: ``links`` (the token and the link, which
messages carry: dunning.messages.rendering uses it), ``optout`` (the consent log entry and
the case event, which the outbox writes for a STOP reply) and ``views`` (the page and the
one-click POST). This face re-exports their names lazily, so importing a low part never
imports the views.
"""

import importlib

#: name -> the part that defines it (the public face of the package).
_PARTS = {
    **dict.fromkeys(("SALT", "LINKED_CHANNELS", "ONE_CLICK", "UnsubscribeAccess", "make_token",
                     "read_token", "unsubscribe_url", "message_link",
                     "list_unsubscribe_headers"), "links"),
    **dict.fromkeys(("has_opted_out", "opt_out", "ESP_OPT_OUTS", "opt_out_by_esp_event",
                     "log_consent", "channel_label"), "optout"),
    **dict.fromkeys(("is_one_click", "find_customer", "private", "unsubscribe", "one_click",
                     "page"), "views"),
}
__all__ = sorted(_PARTS)


def __getattr__(name):
    part = _PARTS.get(name)
    if part is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{part}"), name)


def __dir__():
    return sorted(set(globals()) | set(_PARTS))
