"""Text messages (SMS), through a backend named by ``DUNNING["SMS_BACKEND"]``.

The channel has the shape of every channel (dunning.channels.base.Channel):

- :meth:`SmsChannel.recipient` normalizes the customer's ``phone`` to E.164 with
  ``phonenumbers`` (national numbers need ``DUNNING["SMS_DEFAULT_REGION"]``) and refuses
  a missing, invalid or fixed-line number with a reason;
- :meth:`SmsChannel.build` turns the rendered plain text into one paragraph that fits
  into ``DUNNING["SMS_MAX_SEGMENTS"]`` segments, shortened at a word boundary when it is
  too long, the link (the portal link) always kept whole at the end;
- :meth:`SmsChannel.send` hands a batch to the backend and reports one Outcome per
  message (transient ones are retried by the outbox).

See docs/channels.md.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from ..conf import dunning_settings, load_plugin
from ..exceptions import DunningConfigurationError
from ..failures import describe
from .base import Channel, Outcome, Outgoing
from .sms_backends.base import BaseSmsBackend

logger = logging.getLogger("dunning.sms")

# -- encodings and segments (3GPP TS 23.038) ---------------------------------------------
#: The GSM 03.38 default alphabet: one septet each (ESC, 0x1B, introduces the extension
#: table and is not a character of its own).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: The extension table: two septets each (ESC + the character).
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7 = "GSM-7"
UCS2 = "UCS-2"
#: Characters of one segment, and of each segment of a concatenated message (the user
#: data header takes the difference).
SINGLE = {GSM7: 160, UCS2: 70}
MULTI = {GSM7: 153, UCS2: 67}

#: Typographic characters replaced by their GSM-7 look-alikes (as providers' "smart
#: encoding" does), so that a quote mark or a non-breaking space in a formatted amount
#: does not turn the whole message into UCS-2 (less than half the characters a segment).
LOOKALIKES = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'",
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-", "\u2026": "...", "\u2022": "-", "\u00b7": "-",
})

URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
# Punctuation that ends a sentence rather than the URL before it.
URL_TRAILING = ".,;:!?)]}'\""


def encoding(text: str) -> str:
    """``"GSM-7"`` when every character of ``text`` is in the GSM 03.38 alphabet (or
    its extension table), else ``"UCS-2"``."""
    for char in text:
        if char not in GSM7_BASIC and char not in GSM7_EXTENSION:
            return UCS2
    return GSM7


def _units(text, enc):
    """The size of each character in ``enc``: septets (GSM-7; 2 for the extension
    table) or UTF-16 code units (UCS-2; 2 for a character beyond the BMP, an emoji)."""
    if enc == GSM7:
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def segments(text: str) -> tuple[str, int]:
    """``(encoding, number of segments)`` of ``text`` sent as one SMS.

    A message up to 160 GSM-7 septets (70 UCS-2 units) is one segment; a longer one is
    split into segments of 153 (67), and a character is never split between two
    segments (an escaped GSM-7 character, a UTF-16 surrogate pair)."""
    enc = encoding(text)
    units = _units(text, enc)
    total = sum(units)
    if total <= SINGLE[enc]:
        return enc, 1
    size, count, used = MULTI[enc], 1, 0
    for unit in units:
        if used + unit > size:
            count, used = count + 1, 0
        used += unit
    return enc, count


def to_gsm(text: str) -> str:
    """``text`` with typographic quotes, dashes and the ellipsis as GSM-7 characters."""
    return text.translate(LOOKALIKES)


def one_paragraph(text: str) -> str:
    """Every run of whitespace (line breaks, non-breaking and narrow spaces) as one
    space."""
    return " ".join(text.split())


def find_link(text: str, preferred: str = "") -> str:
    """The link to keep: ``preferred`` (the portal link) when given, else a URL in
    ``text`` under ``PORTAL_BASE_URL``, else the last http(s) URL in ``text``."""
    if preferred:
        return preferred
    links = [m.group(0).rstrip(URL_TRAILING) for m in URL.finditer(text)]
    base = dunning_settings.PORTAL_BASE_URL or ""
    if base:
        for link in links:
            if link.startswith(base):
                return link
    return links[-1] if links else ""


def fit(text: str, max_segments: int, link: str = "") -> str:
    """``text`` as one paragraph within ``max_segments`` segments.

    A text that fits is returned as it is. A longer one is cut at the last word
    boundary that leaves room for an ellipsis and ``link`` (found in the text when not
    given, see :func:`find_link`): the link is never cut, and it ends the message. A
    link that alone does not fit is still sent whole (logged)."""
    body = one_paragraph(to_gsm(text))
    link = find_link(body, link.strip())
    if segments(body)[1] <= max_segments and (not link or link in body):
        return body
    rest = body
    if link:
        at = rest.rfind(link)
        if at >= 0:
            rest = rest[:at] + rest[at + len(link):]
        rest = one_paragraph(rest)
    tail = f" {link}" if link else ""
    if segments(rest + tail)[1] <= max_segments:
        return (rest + tail).strip()

    def candidate(prefix):
        prefix = prefix.rstrip(" ,;:-")
        if not prefix:
            return link
        ellipsis = "..." if encoding(prefix + tail) == GSM7 else "\u2026"
        return prefix + ellipsis + tail

    def fits(prefix):
        return segments(candidate(prefix))[1] <= max_segments

    # The longest prefix ending at a word boundary that fits (longer never fits
    # better: segments only grow with the text, so a binary search finds it).
    cuts = [m.start() for m in re.finditer(" ", rest)]
    lo, hi, best = 0, len(cuts) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        if fits(rest[: cuts[mid]]):
            best, lo = cuts[mid], mid + 1
        else:
            hi = mid - 1
    if best is None:
        # Not even the first word fits: cut inside it.
        lo, hi, best = 1, len(rest), 0
        while lo <= hi:
            mid = (lo + hi) // 2
            if fits(rest[:mid]):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
    result = candidate(rest[:best])
    if segments(result)[1] > max_segments:
        logger.warning("The link %s alone is longer than %d SMS segments; sent whole",
                       link, max_segments)
    return result


@dataclass(slots=True)
class SmsMessage:
    """One text message: ``to`` in E.164, the ``body`` as sent, ``metadata`` (str
    values: ``dunning_case``, ``dunning_step``, ``customer``) and the ``sender``
    (``DUNNING["SMS_FROM"]``; "" lets the backend choose)."""

    to: str
    body: str
    metadata: dict = field(default_factory=dict)
    sender: str = ""

    @property
    def segment_count(self):
        return segments(self.body)[1]


# -- phone numbers --------------------------------------------------------------------------
def normalize_phone(raw, region=None, *, mobile=True):
    """``(E.164 number, "")`` or ``("", reason)`` for the number ``raw``.

    ``region`` (ISO 3166 code, e.g. "DE") lets national numbers ("0151 2345678") parse;
    without it only international ones ("+49 151 2345678") do. Refused: no
    number, one ``phonenumbers`` cannot parse or calls invalid, and one it is sure is a
    fixed line (a number that may be mobile is accepted) when ``mobile`` (texts need
    one; calls do not)."""
    try:
        import phonenumbers
        from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType
    except ImportError as exc:
        raise DunningConfigurationError(
            "The SMS channel needs the phonenumbers library: "
            "pip install phonenumbers"
        ) from exc

    raw = (raw or "").strip()
    if not raw:
        return "", _("no phone number")
    try:
        number = phonenumbers.parse(raw, region or None)
    except NumberParseException as exc:
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and not region:
            return "", _(
                "phone number %(number)s has no country code (write it as +49 ...) and "
                "no default region is set"
            ) % {"number": raw}
        return "", _("invalid phone number: %(number)s") % {"number": raw}
    if not phonenumbers.is_valid_number(number):
        return "", _("invalid phone number: %(number)s") % {"number": raw}
    if mobile and phonenumbers.number_type(number) == PhoneNumberType.FIXED_LINE:
        return "", _("not a mobile number (a fixed line): %(number)s") % {"number": raw}
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), ""


def default_region():
    region = dunning_settings.SMS_DEFAULT_REGION
    return region.upper() if isinstance(region, str) else None


def get_backend(**overrides) -> BaseSmsBackend:
    """A new backend of ``DUNNING["SMS_BACKEND"]``, built with
    ``DUNNING["SMS_BACKEND_OPTIONS"]`` (and ``overrides``)."""
    return load_plugin("SMS_BACKEND", **overrides)


class SmsChannel(Channel):
    key = "sms"

    def __init__(self, backend=None):
        #: A backend instance to use (tests); None: a new one of SMS_BACKEND per batch.
        self.backend = backend

    def recipient(self, customer):
        return normalize_phone(getattr(customer, "phone", "") or "", default_region())

    def build(self, outgoing: Outgoing):
        text = outgoing.text or outgoing.subject or ""
        body = fit(text, max(int(dunning_settings.SMS_MAX_SEGMENTS), 1),
                   link=getattr(outgoing, "portal_url", "") or "")
        if not body:
            raise ValueError(_("the text message is empty"))
        return SmsMessage(
            to=outgoing.recipient,
            body=body,
            metadata=outgoing.metadata(),
            sender=dunning_settings.SMS_FROM or "",
        )

    def send(self, messages):
        """Hand the batch to the backend at once and map its results to outcomes. A
        backend that cannot be built or opened sent nothing: every message is a
        transient failure (tried again later)."""
        messages = list(messages)
        if not messages:
            return []
        try:
            backend = self.backend or get_backend()
            backend.open()
        except Exception as exc:  # noqa: BLE001 - nothing was sent: retry later
            logger.warning("Could not open the SMS backend", exc_info=True)
            reason = describe(exc)
            return [Outcome(False, reason=reason, transient=True, reached=False)
                    for _ in messages]
        try:
            results = backend.send_messages(messages)
        finally:
            try:
                backend.close()
            except Exception:  # noqa: BLE001 - closing a broken backend may fail too
                logger.debug("Closing the SMS backend failed", exc_info=True)
        results = list(results)
        if len(results) != len(messages):
            raise RuntimeError(
                f"{type(backend).__name__}.send_messages() returned {len(results)} results "
                f"for {len(messages)} messages"
            )
        stops = frozenset(str(c) for c in getattr(backend, "opt_out_codes", ()))
        return [
            Outcome(r.ok, reason=r.reason if not r.ok else "", message_id=r.message_id,
                    transient=bool(r.transient and not r.ok),
                    opted_out=bool(not r.ok and str(r.code) in stops))
            for r in results
        ]
