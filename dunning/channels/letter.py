"""Letters: the step's message rendered to a PDF, stored for printing (docs/letters.md).

The channel has the shape of every channel (dunning.channels.base.Channel):

- :meth:`LetterChannel.recipient` accepts every customer that exists (``("letter", "")``):
  the postal address is read in :meth:`~LetterChannel.send`, for the whole batch at once;
- :meth:`LetterChannel.build` keeps the :class:`~dunning.channels.base.Outgoing` as it is;
- :meth:`LetterChannel.send` reads the batch's addresses with one query, renders each
  letter (the page of ``dunning/letters/letter.html`` around the body of the step's HTML
  message) to PDF with WeasyPrint, saves the files and then the
  :class:`~dunning.models.Letter` rows (one ``bulk_create``), and reports one
  ``Outcome(ok, message_id="letter:<pk>")`` per message. A customer without an address
  or a letter that cannot be rendered fails on its own; the rest of the batch is stored.

Rendering never touches the network: the URL fetcher given to WeasyPrint refuses every
URL but ``data:`` (remote images and style sheets are left out, local files too).
"""

from __future__ import annotations

import datetime
import logging
import re
import uuid
from dataclasses import dataclass

from babel.dates import format_date
from django.core.exceptions import FieldError
from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS, DatabaseError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import pgettext

from ..conf import dunning_settings
from ..exceptions import DunningConfigurationError
from ..failures import describe
from ..formatting import babel_locale, customer_timezone
from ..hosts import ANNOTATION_PREFIX, get_adapter, get_customer_model
from ..messages.rendering import HTML_LAYOUT, company_context
from .base import Channel, Outcome, Outgoing

logger = logging.getLogger("dunning.letter")

TEMPLATE = "dunning/letters/letter.html"


# -- the page ----------------------------------------------------------------------------
def _mm(value):
    return f"{value:g}mm"


def _geometry(*, size, margins, letterhead, window, return_height, info, subject_top,
              fold_marks, punch_mark, max_lines):
    top, right, bottom, left = margins
    w_left, w_top, w_width, w_height, w_padding = window
    i_left, i_top, i_width = info
    # Boxes of the first page are placed in the first-page block, whose left edge is the
    # page's left margin and whose top is the sheet's top (the first page has no top
    # margin): their x is the sheet's x minus the left margin.
    return {
        "size": size,
        "margin_top": _mm(top), "margin_right": _mm(right),
        "margin_bottom": _mm(bottom), "margin_left": _mm(left),
        "letterhead_top": _mm(letterhead[0]), "letterhead_height": _mm(letterhead[1]),
        "window_left": _mm(w_left - left), "window_top": _mm(w_top),
        "window_width": _mm(w_width), "window_height": _mm(w_height),
        "window_padding": _mm(w_padding),
        "return_height": _mm(return_height),
        "recipient_height": _mm(w_height - return_height),
        "info_left": _mm(i_left - left), "info_top": _mm(i_top), "info_width": _mm(i_width),
        "subject_top": _mm(subject_top),
        "mark_left": _mm(5 - left),
        "fold_marks": [_mm(y) for y in fold_marks],
        "punch_mark": _mm(punch_mark) if punch_mark else "",
        "max_lines": max_lines,
        # In millimetres from the sheet's top left corner (tests, docs).
        "window_mm": (w_left, w_top, w_width, w_height),
        "recipient_mm": (w_left + w_padding, w_top + return_height,
                         w_width - w_padding, w_height - return_height),
    }


#: The page layouts of ``DUNNING["LETTER_PAGE_SIZE"]``, in millimetres.
PAGE_GEOMETRY = {
    # DIN 5008 form B: letterhead 45 mm; address field 85 x 45 mm at 20 mm from the left
    # and 45 mm from the top (17.7 mm for the return address, 27.3 mm for the recipient),
    # which is the window of a DL or C5/6 envelope (DIN 680) once folded at 105 and
    # 210 mm; information block from 125 mm; punch mark at 148.5 mm.
    "A4": _geometry(
        size="A4", margins=(25, 20, 22, 25), letterhead=(12, 31),
        window=(20, 45, 85, 45, 5), return_height=17.7, info=(125, 50, 65),
        subject_top=98.46, fold_marks=(105, 210), punch_mark=148.5, max_lines=6,
    ),
    # US Letter folded in three for a #10 window envelope (window 4 1/2 x 1 1/8 in,
    # 7/8 in from the left and 1/2 in from the bottom): the recipient's lines from about
    # 2 1/16 in to 3 1/8 in from the top, 1 in from the left; folds at 1/3 and 2/3.
    "letter": _geometry(
        size="letter", margins=(25.4, 25.4, 22, 25.4), letterhead=(12.7, 30),
        window=(22.2, 44.5, 88.9, 34.5, 3.2), return_height=7.5, info=(127, 50.8, 63.5),
        subject_top=95.25, fold_marks=(93.13, 186.27), punch_mark=None, max_lines=6,
    ),
}


def page_size():
    """The configured page size's key in :data:`PAGE_GEOMETRY` (case-insensitive), or
    None when ``DUNNING["LETTER_PAGE_SIZE"]`` is not one of them."""
    value = dunning_settings.LETTER_PAGE_SIZE
    if not isinstance(value, str):
        return None
    return {k.lower(): k for k in PAGE_GEOMETRY}.get(value.strip().lower())


def geometry():
    size = page_size()
    if size is None:
        raise DunningConfigurationError(
            f"DUNNING['LETTER_PAGE_SIZE'] = {dunning_settings.LETTER_PAGE_SIZE!r} is not one "
            f"of {', '.join(PAGE_GEOMETRY)}."
        )
    return PAGE_GEOMETRY[size]


def _css_string(text):
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\A ")
    return '"' + text.replace("<", "\\3C ") + '"'


def page_counter():
    """CSS ``content`` for "Page 1 of 2" in the active language (page counters)."""
    label = _("Page %(page)s of %(pages)s")
    parts = []
    for piece in re.split(r"(%\(pages?\)s)", label):
        if piece == "%(page)s":
            parts.append("counter(page)")
        elif piece == "%(pages)s":
            parts.append("counter(pages)")
        elif piece:
            parts.append(_css_string(piece))
    return mark_safe(" ".join(parts))  # noqa: S308 - built from escaped CSS strings


# -- the message's body -----------------------------------------------------------------
def _unformat(text):
    return text.replace("{{", "{").replace("}}", "}")


_LAYOUT_HEAD, _LAYOUT_TAIL = (_unformat(part) for part in HTML_LAYOUT.split("{body}"))
#: What HTML_LAYOUT puts right before and after the step's HTML body.
_LAYOUT_OPEN = _LAYOUT_HEAD[_LAYOUT_HEAD.index("<body"):]
_BODY = re.compile(r"<body\b[^>]*>(.*)</body\s*>", re.IGNORECASE | re.DOTALL)


def message_body(html):
    """The step's own HTML out of a message rendered into ``rendering.HTML_LAYOUT`` (the
    email frame is left out: the letter has its own page); the ``<body>`` of any other
    full document; or ``html`` itself when it is a fragment."""
    if not html:
        return ""
    start = html.find(_LAYOUT_OPEN)
    if start >= 0 and html.rstrip().endswith(_LAYOUT_TAIL.strip()):
        end = html.rstrip().rindex(_LAYOUT_TAIL.strip())
        return html[start + len(_LAYOUT_OPEN):end]
    match = _BODY.search(html)
    return match.group(1) if match else html


# -- addresses ---------------------------------------------------------------------------
def address_lines(value):
    """The lines of an address: a text (lines separated by line breaks) or a list of
    lines; spaces tidied, empty lines left out."""
    if value is None:
        return []
    if isinstance(value, list | tuple):
        value = "\n".join(str(v) for v in value if v is not None)
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return [line for line in (" ".join(part.split()) for part in text.split("\n")) if line]


def window_lines(name, address):
    """The recipient's lines in the envelope's window: the name, then the address (whose
    first line is not repeated when it is the name already)."""
    lines = address_lines(address)
    name = " ".join((name or "").split())
    if name and not (lines and lines[0].casefold() == name.casefold()):
        lines.insert(0, name)
    return lines


@dataclass(slots=True)
class Addressee:
    name: str
    address: str
    language: str
    timezone: str


def _address_callable():
    return dunning_settings.CUSTOMER_ADDRESS or None  # imported by conf (IMPORT_STRINGS)


def addressees(customer_ids, using=DEFAULT_DB_ALIAS):
    """{customer pk: Addressee} for these customers, with one query (plus what a
    ``DUNNING["CUSTOMER_ADDRESS"]`` callable does on its own). Customers that do not
    exist are missing. Raises DunningConfigurationError when the address setting is
    wrong (a field the customer model does not have)."""
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    adapter = get_adapter()
    func = _address_callable()
    names = ("name", "language", "timezone")
    queryset = getattr(adapter, "customer_queryset", None)
    queryset = queryset() if queryset else get_customer_model()._default_manager.all()
    queryset = queryset.using(using).filter(pk__in=ids).order_by()
    expression = getattr(adapter, "customer_expression", None)
    rows = None if expression else adapter.customer_rows(ids)
    if expression:
        queryset = queryset.annotate(
            **{f"{ANNOTATION_PREFIX}letter_{n}": expression(n) for n in names}
        )
    result = {}

    def canonical(pk, values):
        if rows is not None:
            row = rows.get(pk)
            return (row.name, row.language, row.timezone) if row else ("", "", "")
        return tuple("" if v is None else str(v) for v in values)

    if func is not None:
        for customer in queryset:
            values = [getattr(customer, f"{ANNOTATION_PREFIX}letter_{n}", "") for n in names]
            name, language, tz = canonical(customer.pk, values)
            result[customer.pk] = Addressee(name, _call(func, customer), language, tz)
        return result
    path = dunning_settings.CUSTOMER_ADDRESS_FIELD or "address"
    columns = [f"{ANNOTATION_PREFIX}letter_{n}" for n in names] if expression else []
    try:
        values = list(queryset.values_list("pk", path, *columns))
    except (FieldError, ValueError) as exc:
        model = queryset.model._meta.label
        raise DunningConfigurationError(
            _("DUNNING['CUSTOMER_ADDRESS_FIELD'] = %(path)r is not a field of the customer "
              "model %(model)s (%(error)s): set it to the field that holds the postal "
              "address, or set DUNNING['CUSTOMER_ADDRESS'].")
            % {"path": path, "model": model, "error": exc}
        ) from exc
    for pk, address, *rest in values:
        known = result.get(pk)
        if known is not None and known.address:
            continue  # a path through a to-many relation: the first address wins
        name, language, tz = canonical(pk, rest)
        result[pk] = Addressee(name, "" if address is None else address, language, tz)
    return result


class _AddressFailed(Exception):
    pass


def _call(func, customer):
    try:
        return func(customer)
    except Exception as exc:  # noqa: BLE001 - the host's function: one letter fails
        logger.warning("DUNNING['CUSTOMER_ADDRESS'] failed for customer %s", customer.pk,
                       exc_info=True)
        return _AddressFailed(describe(exc, None))


# -- rendering ---------------------------------------------------------------------------
def offline_url_fetcher():
    """A WeasyPrint URL fetcher that fetches nothing but ``data:`` URIs: no network
    (http, https, ftp) and no local files. A refused URL is logged by WeasyPrint and
    left out of the letter; rendering goes on."""
    from weasyprint import urls

    def refuse(url):
        if not url.lower().startswith("data:"):
            raise ValueError(f"Letters fetch no external resources: {url[:200]}")

    fetcher_class = getattr(urls, "URLFetcher", None)
    if fetcher_class is None:  # WeasyPrint before URLFetcher objects: a function
        def fetch(url, *args, **kwargs):
            refuse(url)
            return urls.default_url_fetcher(url, *args, **kwargs)

        return fetch

    class OfflineURLFetcher(fetcher_class):
        def fetch(self, url, headers=None):
            refuse(url)
            return super().fetch(url, headers)

    return OfflineURLFetcher(allowed_protocols={"data"}, allow_redirects=False, timeout=1)


def _weasyprint():
    try:
        import weasyprint
    except (ImportError, OSError) as exc:  # OSError: Pango is missing
        raise DunningConfigurationError(
            "Letters need WeasyPrint and Pango: pip install django-dunning[letters] and "
            f"apt-get install libpango-1.0-0 libpangoft2-1.0-0 ({describe(exc, None)})"
        ) from exc
    return weasyprint


def letter_html(outgoing: Outgoing, addressee: Addressee, lines, *, today=None):
    """The HTML document of one letter (``dunning/letters/letter.html``) in the
    customer's language."""
    locale = babel_locale(addressee.language)
    if today is None:
        today = timezone.localtime(timezone.now(), customer_timezone(addressee.timezone)).date()
    company = company_context()
    company_lines = address_lines(company.get("address"))
    with translation.override(locale.language):
        context = {
            "lang": locale.language,
            "subject": outgoing.subject,
            "body": mark_safe(message_body(outgoing.html)),  # noqa: S308 - sandbox output
            "text": outgoing.text,
            "company": company,
            "company_lines": company_lines,
            "return_line": " · ".join(([company["name"]] if company["name"] else []) + company_lines),
            "recipient_lines": lines,
            "date": format_date(today, format="long", locale=locale),
            "reference": pgettext("letter reference", "Case %(case)s") % {"case": outgoing.case_id},
            "geometry": geometry(),
            "page_counter": page_counter(),
        }
        return render_to_string(TEMPLATE, context)


def render_pdf(html):
    """``(PDF bytes, number of pages)`` of an HTML document (no network, see
    :func:`offline_url_fetcher`)."""
    weasyprint = _weasyprint()
    document = weasyprint.HTML(string=html, url_fetcher=offline_url_fetcher()).render()
    return document.write_pdf(), len(document.pages)


# -- the channel -------------------------------------------------------------------------
class LetterChannel(Channel):
    """Letters by post: a PDF per message, stored as a :class:`dunning.models.Letter`
    ("ready") for printing or a print-and-mail service (see docs/letters.md)."""

    key = "letter"

    def __init__(self, using=DEFAULT_DB_ALIAS):
        self.using = using

    def recipient(self, customer):
        # The address is read for the whole batch in send(); a customer without one
        # fails there, with its reason.
        return "letter", ""

    def build(self, outgoing: Outgoing):
        return outgoing

    def send(self, messages):
        from ..models import Letter

        messages = list(messages)
        if not messages:
            return []
        outcomes: list[Outcome | None] = [None] * len(messages)
        try:
            geometry()
            people = addressees({m.customer_id for m in messages}, self.using)
            _weasyprint()
        except DunningConfigurationError as exc:
            # Fixed by a person; the letters should go out then: tried again later.
            logger.error("Letters cannot be made: %s", exc)
            return [Outcome(False, reason=str(exc)[:2000], transient=True) for _ in messages]
        steps = self._steps(messages)
        existing = {
            letter.case_step_id: letter
            for letter in Letter.objects.using(self.using).filter(case_step__in=steps.values())
        } if steps else {}
        max_lines = geometry()["max_lines"]
        new, replaced, saved = [], [], []  # saved: (index, letter)
        for index, message in enumerate(messages):
            person = people.get(message.customer_id)
            if person is None:
                outcomes[index] = Outcome(False, reason=_("customer not found"))
                continue
            if isinstance(person.address, _AddressFailed):
                outcomes[index] = Outcome(False, reason=_(
                    "the postal address could not be read: %(error)s"
                ) % {"error": person.address.args[0]})
                continue
            if not address_lines(person.address):
                outcomes[index] = Outcome(False, reason=_("no postal address"))
                continue
            lines = window_lines(person.name, person.address)
            if len(lines) > max_lines:
                outcomes[index] = Outcome(False, reason=_(
                    "the postal address has %(count)d lines with the name; at most %(max)d "
                    "fit in the envelope's window"
                ) % {"count": len(lines), "max": max_lines})
                continue
            try:
                pdf, pages = render_pdf(letter_html(message, person, lines))
            except Exception as exc:  # noqa: BLE001 - this letter fails, not the batch
                logger.warning("Rendering the letter of step %s of case %s failed",
                               message.step_key, message.case_id, exc_info=True)
                outcomes[index] = Outcome(False, reason=_("the letter could not be rendered: "
                                                          "%(error)s") % {
                    "error": describe(exc, 1900)})
                continue
            step_pk = steps.get((message.case_id, message.step_key))
            letter = existing.get(step_pk) if step_pk else None
            if letter is None:
                letter = Letter(case_id=message.case_id, case_step_id=step_pk)
                new.append(letter)
            else:
                replaced.append(letter)  # sent again: the step's letter is made anew
            letter.customer_key = str(message.customer_id)[:64]
            letter.step_key = message.step_key
            letter.recipient_address = "\n".join(lines)
            letter.pages = pages
            letter.size = len(pdf)
            letter.created_at = timezone.now()
            letter.printed_at = None
            letter.status = Letter.Status.READY
            name = f"letter-{message.case_id}-{message.step_key}-{uuid.uuid4().hex[:12]}.pdf"
            try:
                letter.pdf.save(name, ContentFile(pdf), save=False)
            except Exception as exc:  # noqa: BLE001 - a storage outage may pass
                logger.warning("Storing the letter of step %s of case %s failed",
                               message.step_key, message.case_id, exc_info=True)
                outcomes[index] = Outcome(False, transient=True, reason=_(
                    "the letter could not be stored: %(error)s"
                ) % {"error": describe(exc, 1900)})
                if letter in new:
                    new.remove(letter)
                else:
                    replaced.remove(letter)
                continue
            saved.append((index, letter))
        if saved:
            try:
                self._write(Letter, new, replaced)
            except DatabaseError as exc:
                # The files are there but not their rows: nothing to print. Remove them
                # and try again later.
                logger.warning("Recording %d letters failed", len(saved), exc_info=True)
                for _index, letter in saved:
                    self._delete_file(letter)
                reason = _("the letter could not be recorded: %(error)s") % {
                    "error": describe(exc, 1900)}
                for index, _letter in saved:
                    outcomes[index] = Outcome(False, reason=reason, transient=True)
                return outcomes
            for index, letter in saved:
                outcomes[index] = Outcome(True, message_id=f"letter:{letter.pk}")
        return outcomes

    def _steps(self, messages):
        """{(case pk, step key): CaseStep pk} of the messages (one query)."""
        from ..models import CaseStep

        which = Q()
        for message in messages:
            which |= Q(case_id=message.case_id, step_key=message.step_key)
        return {
            (case_id, key): pk
            for pk, case_id, key in CaseStep.objects.using(self.using).filter(which)
            .values_list("pk", "case_id", "step_key")
        }

    def _write(self, model, new, replaced):
        with transaction.atomic(using=self.using):
            if new:
                model.objects.using(self.using).bulk_create(new)
                missing = [letter for letter in new if letter.pk is None]
                if missing:  # a database that does not return the new keys
                    pks = dict(model.objects.using(self.using).filter(
                        pdf__in=[letter.pdf.name for letter in missing]
                    ).values_list("pdf", "pk"))
                    for letter in missing:
                        letter.pk = letter.id = pks[letter.pdf.name]
            if replaced:
                model.objects.using(self.using).bulk_update(replaced, [
                    "customer_key", "step_key", "recipient_address", "pdf", "pages", "size",
                    "created_at", "printed_at", "status",
                ])

    @staticmethod
    def _delete_file(letter):
        try:
            letter.pdf.storage.delete(letter.pdf.name)
        except Exception:  # noqa: BLE001 - best effort
            logger.debug("Could not delete %s", letter.pdf.name, exc_info=True)


def today_range(now=None):
    """(start, end) of today in the site's time zone, for "today's letters"."""
    today = timezone.localdate(now or timezone.now())
    midnight = datetime.time.min
    return (timezone.make_aware(datetime.datetime.combine(today, midnight)),
            timezone.make_aware(datetime.datetime.combine(today + datetime.timedelta(days=1),
                                                          midnight)))
