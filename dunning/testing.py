"""Helpers for the tests of host projects (and of django-dunning itself).

``create_customer`` and ``create_invoice`` build host objects through the field mapping,
so the same test works on the shipped models and on a host's own (where every mapped
field is a direct field of the model)::

    from dunning.testing import create_customer, create_invoice, override_dunning_settings

    customer = create_customer(name="Ada", email="ada@example.com", language="de")
    create_invoice(customer, number="INV-1", amount_due="120.00", currency="EUR",
                   due_date=date(2026, 1, 1))
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from django.test import Client, override_settings

from .conf import dunning_settings
from .hosts import get_adapter, get_customer_model, get_invoice_model

_numbers = itertools.count(1)


def override_dunning_settings(**values):
    """``override_settings`` for keys of ``DUNNING``, keeping the others."""
    return override_settings(DUNNING={**dunning_settings.user_settings, **values})


def _host_fields(mapping_lookup, values):
    fields = {}
    for name, value in values.items():
        path = mapping_lookup(name)
        if path is None:
            continue
        if "__" in path:
            raise ValueError(
                f"{name!r} is mapped through a relation ({path!r}); create that object yourself."
            )
        fields[path] = value
    return fields


def create_customer(**values):
    """Create a host customer from canonical values (name, email, phone, language, timezone)."""
    adapter = get_adapter()
    values.setdefault("name", f"Customer {next(_numbers)}")
    values.setdefault("email", f"customer{next(_numbers)}@example.com")
    return get_customer_model()._default_manager.create(
        **_host_fields(adapter.customer_field, values)
    )


def create_invoice(customer, **values):
    """Create a host invoice from canonical values (number, amount_due, currency, due_date)."""
    adapter = get_adapter()
    values.setdefault("number", f"INV-{next(_numbers):06d}")
    values.setdefault("currency", "EUR")
    values["amount_due"] = Decimal(str(values.get("amount_due", "100.00")))
    values["customer"] = customer
    return get_invoice_model()._default_manager.create(
        **_host_fields(adapter.invoice_field, values)
    )


def portal_stamp(client, path, action):
    """The stamp of form ``action`` on the self-service page at ``path`` as a browser gets
    it (dunning.portal.stamps): GET the page and read the hidden field; None when the page
    shows no such form."""
    import html
    import re

    page = client.get(path).content.decode()
    match = re.search(r'name="action" value="' + re.escape(action)
                      + r'"><input type="hidden" name="stamp" value="([^"]*)"', page)
    return html.unescape(match.group(1)) if match else None


def portal_post(client, path, data):
    """POST form ``data["action"]`` of the self-service page at ``path`` the way a browser
    does: from a freshly loaded page, with its stamp (unless ``data`` has one, or the page
    shows no such form: then ``data`` goes as it is)."""
    if "stamp" not in data and data.get("action") not in (None, "resend"):
        stamp = portal_stamp(client, path, data["action"])
        if stamp is not None:
            data = {**data, "stamp": stamp}
    return Client.post(client, path, data)


class PortalClient(Client):
    """A test client that sends the self-service page's forms as a browser does: a POST of
    a form without a stamp is sent from the page loaded just before (with its stamp). A
    POST with a ``stamp``, or of a form the page does not show, goes as it is."""

    def post(self, path, data=None, *args, **kwargs):
        if isinstance(data, dict) and "/portal/" in str(path) and not args and not kwargs:
            return portal_post(self, path, data)
        return super().post(path, data, *args, **kwargs)
