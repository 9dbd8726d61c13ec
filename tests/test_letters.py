"""Letters (dunning.channels.letter, dunning.admin.letters): the step's message rendered to
a PDF with WeasyPrint, stored as a Letter for printing, downloaded from the admin.

No network: every test runs with sockets that refuse to connect (a letter must never
fetch anything), and the files go to a temporary MEDIA_ROOT.
"""

import csv
import datetime
import io
import socket
import zipfile
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.files.storage import FileSystemStorage
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from dunning.admin.letters import case_letter_entries
from dunning.channels.base import Outgoing
from dunning.channels.letter import (
    PAGE_GEOMETRY,
    Addressee,
    LetterChannel,
    addressees,
    letter_html,
    message_body,
    offline_url_fetcher,
    render_pdf,
    window_lines,
)
from dunning.checks import check_letter_settings
from dunning.engine.outbox import drain
from dunning.messages.rendering import HTML_LAYOUT
from dunning.models import Case, CaseStep, Letter, Policy, Step
from dunning.testing import override_dunning_settings

from .conftest import DAY0
from .optional import weasyprint as require_weasyprint

weasyprint = require_weasyprint()

COMPANY = {"name": "Test Shop GmbH", "address": "Hauptstraße 1\n10115 Berlin",
           "email": "billing@example.com", "phone": "+49 30 123456",
           "payment_url": "https://pay.example.com"}
MM = 25.4 / 96  # WeasyPrint lays out in CSS pixels

#: The addresses ``address_of`` knows, by email (the shipped Customer has no address).
ADDRESSES = {}


def address_of(customer):
    """DUNNING["CUSTOMER_ADDRESS"] of these tests."""
    return ADDRESSES.get(customer.email, "")


def letters(**more):
    return override_dunning_settings(
        CUSTOMER_ADDRESS="tests.test_letters.address_of", COMPANY=COMPANY, RENDER_PROCESSES=1,
        **more,
    )


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.DUNNING = {**settings.DUNNING, "COMPANY": COMPANY}
    ADDRESSES.clear()
    yield Path(settings.MEDIA_ROOT)
    ADDRESSES.clear()


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every attempt to resolve a host name or open a connection is recorded and refused."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests/test_letters.py")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


def outgoing(body, *, case_id=7, customer_id=3, subject="Payment reminder", step="formal-notice"):
    return Outgoing(case_id=case_id, customer_id=customer_id, step_key=step, recipient="letter",
                    subject=subject, text="plain text", html=HTML_LAYOUT.format(
                        lang="en", subject=subject, body=body))


def new_case(customer):
    return Case.objects.create(customer=customer, opened_on=DAY0, opened_at=timezone.now(),
                               policy=Policy.objects.get(key="standard"))


ADA = Addressee("Ada Lovelace", "Musterweg 5\n12345 Musterstadt", "en", "Europe/Berlin")


def layout(html):
    return weasyprint.HTML(string=html, url_fetcher=offline_url_fetcher()).render()


def boxes(box):
    yield box
    for child in getattr(box, "children", ()):
        yield from boxes(child)


def box_mm(page, element_id):
    """(left, top, width, height) in mm of the element's border box on ``page``."""
    for box in boxes(page._page_box):
        element = getattr(box, "element", None)
        if element is not None and element.get("id") == element_id and box.element_tag != "html":
            return (box.border_box_x() * MM, box.border_box_y() * MM,
                    box.border_width() * MM, box.border_height() * MM)
    raise AssertionError(f"no #{element_id} on the page")


def margin_text(page):
    """The text of the page's margin boxes (the page number)."""
    margins = [b for b in page._page_box.children if type(b).__name__ == "MarginBox"]
    texts = [b.text for m in margins for b in boxes(m) if type(b).__name__ == "TextBox"]
    return " ".join(texts)


# -- the letter page ---------------------------------------------------------------------------
def test_a_letter_is_a_pdf_with_the_company_the_address_and_the_invoices():
    message = outgoing("<p>Dear Ada,</p><table><tr><td>INV-4711</td><td>€120.00</td></tr></table>")
    html = letter_html(message, ADA, window_lines(ADA.name, ADA.address),
                       today=datetime.date(2026, 3, 9))
    for text in ("Test Shop GmbH", "Hauptstraße 1", "10115 Berlin", "billing@example.com",
                 "INV-4711", "€120.00", "Payment reminder", "Ada Lovelace", "Musterweg 5",
                 "12345 Musterstadt", "March 9, 2026", "Case 7"):
        assert text in html, text
    # The return address above the recipient, on one line.
    assert "Test Shop GmbH · Hauptstraße 1 · 10115 Berlin" in html
    # The email frame is not in the letter: the letter has its own page.
    assert "max-width: 640px" not in html
    document = layout(html)
    assert len(document.pages) == 1
    assert margin_text(document.pages[0]) == "Page 1 of 1"
    pdf, pages = render_pdf(html)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert pages == 1


def test_a_long_letter_has_more_pages_each_numbered_page_x_of_y():
    rows = "".join(f"<tr><td>INV-{n:04d}</td><td>€10.00</td></tr>" for n in range(90))
    html = letter_html(outgoing(f"<table>{rows}</table>"), ADA,
                       window_lines(ADA.name, ADA.address))
    document = layout(html)
    count = len(document.pages)
    assert count >= 2
    assert [margin_text(p) for p in document.pages] == [
        f"Page {n} of {count}" for n in range(1, count + 1)]
    assert render_pdf(html)[1] == count


def test_german_customers_get_german_labels_dates_and_page_numbers():
    person = Addressee("Jörg Müller", "Lindenallee 3\n50667 Köln", "de", "Europe/Berlin")
    html = letter_html(outgoing("<p>Sehr geehrter Herr Müller,</p>"), person,
                       window_lines(person.name, person.address), today=datetime.date(2026, 3, 9))
    assert 'lang="de"' in html
    for text in ("Datum", "9. März 2026", "Unser Zeichen", "Vorgang 7"):
        assert text in html, text
    assert margin_text(layout(html).pages[0]) == "Seite 1 von 1"
    assert translation.get_language() == "en"  # the customer's language was not left active


@pytest.mark.parametrize("size", ["A4", "letter"])
def test_the_address_sits_in_the_envelope_window(size):
    with override_dunning_settings(LETTER_PAGE_SIZE=size, COMPANY=COMPANY):
        html = letter_html(outgoing("<p>Hello</p>"), ADA, window_lines(ADA.name, ADA.address))
    page = layout(html).pages[0]
    width, height = page.width * MM, page.height * MM
    expected = {"A4": (210, 297), "letter": (215.9, 279.4)}[size]
    assert (round(width, 1), round(height, 1)) == expected
    left, top, w, h = box_mm(page, "recipient")
    w_left, w_top, w_width, w_height = PAGE_GEOMETRY[size]["window_mm"]
    if size == "A4":
        # DIN 5008 form B: the recipient's lines 25 mm from the left, 62.7 mm from the
        # top, 27.3 mm high (the address field at 20/45 mm, 85 x 45 mm; the window of a
        # DL or C5/6 envelope).
        assert (round(left, 1), round(top, 1), round(h, 1)) == (25.0, 62.7, 27.3)
        assert (w_left, w_top, w_width, w_height) == (20, 45, 85, 45)
    else:
        # #10 window envelope, folded in three: the window shows about 2 1/16 in to
        # 3 1/8 in from the sheet's top, 1 in from the left.
        assert 25.4 <= left and left + w <= 25.4 + 4.5 * 25.4
        assert 51 <= top and top + h <= 80
    right, bottom = round(left + w, 1), round(top + h, 1)
    assert w_left <= left and right <= w_left + w_width
    assert w_top <= top and bottom <= w_top + w_height


def test_the_body_of_the_step_is_taken_out_of_the_email_frame():
    assert message_body(HTML_LAYOUT.format(lang="en", subject="S", body="<p>Hi {x}</p>")) == "<p>Hi {x}</p>"
    assert message_body("<html><body class='x'><p>Own</p></body></html>") == "<p>Own</p>"
    assert message_body("<p>Fragment</p>") == "<p>Fragment</p>"
    assert message_body(None) == ""


def test_a_message_without_html_is_printed_from_its_plain_text():
    message = Outgoing(case_id=1, customer_id=1, step_key="s", recipient="letter",
                       subject="Reminder", text="Line one\n\nINV-9 is due", html=None)
    html = letter_html(message, ADA, window_lines(ADA.name, ADA.address))
    assert "<p>Line one</p>" in html and "INV-9 is due" in html


def test_the_window_lines_do_not_repeat_the_name():
    assert window_lines("Ada", "  Musterweg  5 \r\n\n 12345 Musterstadt ") == [
        "Ada", "Musterweg 5", "12345 Musterstadt"]
    assert window_lines("Ada", "ada\nMusterweg 5") == ["ada", "Musterweg 5"]
    assert window_lines("", ["Co KG", "Weg 1"]) == ["Co KG", "Weg 1"]


def test_remote_images_and_style_sheets_are_never_fetched(no_network, caplog):
    body = (
        '<link rel="stylesheet" href="https://example.invalid/x.css">'
        '<style>@import url("http://example.invalid/y.css");'
        ' p { background: url(http://example.invalid/bg.png) }</style>'
        '<p>Logo: <img src="http://example.invalid/x.png" alt="logo"></p>'
        '<p><img src="file:///etc/hostname" alt="local"></p>'
        '<p>INV-1</p>'
    )
    pdf, pages = render_pdf(letter_html(outgoing(body), ADA, window_lines(ADA.name, ADA.address)))
    assert pdf.startswith(b"%PDF") and pages == 1
    assert no_network == []  # not even a DNS lookup
    fetcher = offline_url_fetcher()
    for url in ("http://example.invalid/x.png", "https://example.invalid/x.css",
                "file:///etc/hostname", "ftp://example.invalid/f"):
        with pytest.raises(ValueError, match="no external resources"):
            fetcher(url)
    # Embedded images (a logo as a data: URI) still work.
    pixel = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4"
             "nGNgYGBgAAAABQABpfZFQAAAAABJRU5ErkJggg==")
    assert fetcher(pixel).read().startswith(b"\x89PNG")


# -- the channel -----------------------------------------------------------------------------
def letter_steps(*keys):
    """Steps of the shipped policy sent by letter."""
    Step.objects.filter(policy__key="standard", key__in=keys).update(channel="letter")


def test_a_run_stores_one_letter_per_customer_and_a_missing_address_fails_alone(
        overdue_customer, run, media, mailoutbox):
    letter_steps("initial-notice")
    ada = overdue_customer(name="Ada Lovelace", email="ada@example.com", amount="120.00")
    bob = overdue_customer(name="Bob", email="bob@example.com")
    cy = overdue_customer(name="Cy", email="cy@example.com", language="de")
    ADDRESSES.update({"ada@example.com": "Musterweg 5\n12345 Musterstadt",
                      "cy@example.com": "Cy GmbH\nLindenallee 3\n50667 Köln"})
    with letters():
        result = run(1)
    assert (result.sent, result.failed) == (2, 1)
    assert mailoutbox == []  # the step goes by post only
    steps = {s.case.customer_id: s for s in CaseStep.objects.select_related("case")}
    failed = steps[bob.pk]
    assert failed.status == CaseStep.Status.FAILED
    assert failed.reason == "no postal address"
    assert Case.objects.get(pk=failed.case_id).needs_person
    assert not Letter.objects.filter(case_id=failed.case_id).exists()
    for customer, lines in ((ada, "Ada Lovelace\nMusterweg 5\n12345 Musterstadt"),
                            (cy, "Cy\nCy GmbH\nLindenallee 3\n50667 Köln")):
        step = steps[customer.pk]
        letter = Letter.objects.get(case_step=step)
        assert step.status == CaseStep.Status.SENT
        assert step.message_id == f"letter:{letter.pk}"
        assert (letter.case_id, letter.customer_key, letter.step_key) == (
            step.case_id, str(customer.pk), "initial-notice")
        assert letter.recipient_address == lines
        assert (letter.status, letter.printed_at, letter.pages) == (Letter.Status.READY, None, 1)
        # The file is in MEDIA_ROOT, under dunning/letters/<year>/<month>/.
        path = Path(letter.pdf.path)
        month = timezone.now().strftime("%Y/%m")
        assert path.parent == media / "dunning" / "letters" / month
        data = path.read_bytes()
        assert data.startswith(b"%PDF") and len(data) == letter.size


def test_the_address_field_is_read_with_one_query_for_the_batch(
        make_customer, django_assert_num_queries):
    # The shipped Customer has no address field: any text field (or "__" path) will do.
    people = [make_customer(name=f"P{n}", phone=f"Weg {n}\n1000{n} Stadt") for n in range(5)]
    with override_dunning_settings(CUSTOMER_ADDRESS_FIELD="phone"):
        with django_assert_num_queries(1):
            found = addressees([p.pk for p in people] + [999999])
    assert sorted(found) == sorted(p.pk for p in people)  # a missing customer is missing
    assert found[people[2].pk].address == "Weg 2\n10002 Stadt"
    assert found[people[2].pk].name == "P2"


def test_a_missing_address_field_is_a_configuration_problem_retried_later(make_customer):
    customer = make_customer(name="Ann")
    with override_dunning_settings(COMPANY=COMPANY):  # default field "address": not there
        [outcome] = LetterChannel().send([outgoing("<p>x</p>", customer_id=customer.pk)])
    assert not outcome.ok and outcome.transient
    assert "CUSTOMER_ADDRESS_FIELD" in outcome.reason and "'address'" in outcome.reason
    assert not Letter.objects.exists()


def test_one_letter_that_cannot_be_rendered_fails_alone(make_customer, monkeypatch):
    from dunning.channels import letter as letter_module

    first, broken, last = (make_customer(name=n, email=f"{n}@example.com") for n in "abc")
    for c in (first, broken, last):
        ADDRESSES[c.email] = "Weg 1\n12345 Stadt"
    real = letter_module.render_pdf

    def render(html):
        if "BROKEN" in html:
            raise RuntimeError("layout failed")
        return real(html)

    monkeypatch.setattr(letter_module, "render_pdf", render)
    case = new_case(first)
    messages = [outgoing("<p>one</p>", customer_id=first.pk, case_id=case.pk, step="a"),
                outgoing("<p>BROKEN</p>", customer_id=broken.pk, case_id=case.pk, step="b"),
                outgoing("<p>three</p>", customer_id=last.pk, case_id=case.pk, step="c")]
    with letters():
        outcomes = LetterChannel().send([LetterChannel().build(m) for m in messages])
    assert [o.ok for o in outcomes] == [True, False, True]
    assert not outcomes[1].transient
    assert outcomes[1].reason == "the letter could not be rendered: RuntimeError: layout failed"
    stored = {f"letter:{pk}": step for pk, step in Letter.objects.values_list("pk", "step_key")}
    assert [stored[outcomes[0].message_id], stored[outcomes[2].message_id]] == ["a", "c"]
    assert Letter.objects.filter(case_step__isnull=True).count() == 2  # no step rows here


def test_an_address_that_does_not_fit_the_window_is_refused(make_customer):
    customer = make_customer(name="Ann", email="ann@example.com")
    ADDRESSES["ann@example.com"] = "\n".join(f"line {n}" for n in range(6))
    case = new_case(customer)
    with letters():
        [outcome] = LetterChannel().send([outgoing("<p>x</p>", customer_id=customer.pk,
                                                   case_id=case.pk)])
    assert not outcome.ok and not outcome.transient
    assert outcome.reason == ("the postal address has 7 lines with the name; at most 6 fit "
                              "in the envelope's window")


def test_a_step_sent_again_makes_its_letter_anew(overdue_customer, run):
    letter_steps("initial-notice")
    ann = overdue_customer(name="Ann", email="ann@example.com")
    ADDRESSES["ann@example.com"] = "Old Street 1\n11111 Oldtown"
    with letters():
        run(1)
    letter = Letter.objects.get()
    old_file = letter.pdf.name
    Letter.objects.filter(pk=letter.pk).update(status=Letter.Status.PRINTED,
                                               printed_at=timezone.now())
    # The address is corrected and a person sends the step again (the admin's "Send
    # again" queues it; the outbox's drain sends it).
    ADDRESSES["ann@example.com"] = "New Street 2\n22222 Newtown"
    step = CaseStep.objects.get(case__customer=ann)
    CaseStep.objects.filter(pk=step.pk).update(status=CaseStep.Status.QUEUED, attempts=0,
                                               next_attempt_at=timezone.now())
    with letters():
        assert drain().sent == 1
    again = Letter.objects.get()  # the same row: one letter per step
    assert again.pk == letter.pk
    assert (again.status, again.printed_at) == (Letter.Status.READY, None)
    assert again.recipient_address == "Ann\nNew Street 2\n22222 Newtown"
    assert again.pdf.name != old_file
    step.refresh_from_db()
    assert (step.status, step.message_id) == (CaseStep.Status.SENT, f"letter:{letter.pk}")


def test_letters_go_to_the_storage_named_by_letter_storage(settings, tmp_path, make_customer):
    settings.STORAGES = {
        **settings.STORAGES,
        "letters": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                    "OPTIONS": {"location": str(tmp_path / "private")}},
    }
    customer = make_customer(name="Ann", email="ann@example.com")
    ADDRESSES["ann@example.com"] = "Weg 1\n12345 Stadt"
    case = new_case(customer)
    with letters(LETTER_STORAGE="letters"):
        [outcome] = LetterChannel().send([outgoing("<p>x</p>", customer_id=customer.pk,
                                                   case_id=case.pk)])
        letter = Letter.objects.get()
        assert isinstance(letter.pdf.storage._wrapped, FileSystemStorage)
        path = Path(letter.pdf.path)
    assert outcome.ok
    assert path.is_relative_to(tmp_path / "private") and path.read_bytes().startswith(b"%PDF")
    assert not (tmp_path / "media").exists()


# -- the admin -------------------------------------------------------------------------------------
@pytest.fixture
def stored(make_customer):
    """Letters as the channel stores them: 3 ready of today, 1 ready of yesterday, 1
    printed, 1 cancelled; each with its own small PDF."""
    from django.core.files.base import ContentFile

    customer = make_customer(name="Ann")
    case = new_case(customer)
    now = timezone.now()
    made = {}
    for key, status, created in (
        ("r1", Letter.Status.READY, now), ("r2", Letter.Status.READY, now),
        ("r3", Letter.Status.READY, now), ("old", Letter.Status.READY, now - datetime.timedelta(days=1)),
        ("done", Letter.Status.PRINTED, now), ("off", Letter.Status.CANCELLED, now),
    ):
        letter = Letter(case=case, customer_key=str(customer.pk), step_key=key, status=status,
                        recipient_address=f"Ann\n{key} Street", created_at=created, pages=1,
                        printed_at=now - datetime.timedelta(hours=1) if key == "done" else None)
        letter.pdf.save(f"{key}.pdf", ContentFile(b"%PDF-1.7 " + key.encode()), save=False)
        letter.save()
        made[key] = letter
    return made


def changelist():
    return reverse("admin:dunning_letter_changelist")


def opened_zip(response):
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert "attachment" in response["Content-Disposition"]
    return zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))


def test_download_gives_one_zip_of_the_selected_letters_and_marks_them_printed(
        admin_client, stored):
    chosen = [stored[k] for k in ("r2", "r1", "done", "off")]
    response = admin_client.post(changelist(), {
        "action": "download_letters", "_selected_action": [lt.pk for lt in chosen]})
    archive = opened_zip(response)
    pdfs = [n for n in archive.namelist() if n.endswith(".pdf")]
    # Oldest first; the cancelled letter is left out.
    assert [archive.read(n) for n in pdfs] == [b"%PDF-1.7 r1", b"%PDF-1.7 r2", b"%PDF-1.7 done"]
    assert pdfs[0] == f"0001-letter-{stored['r1'].pk}-case-{stored['r1'].case_id}-r1.pdf"
    rows = list(csv.DictReader(io.StringIO(archive.read("letters.csv").decode("utf-8-sig"))))
    assert [(r["file"], r["step"], r["recipient_address"]) for r in rows] == [
        (pdfs[0], "r1", "Ann\nr1 Street"), (pdfs[1], "r2", "Ann\nr2 Street"),
        (pdfs[2], "done", "Ann\ndone Street")]
    status = dict(Letter.objects.values_list("step_key", "status"))
    assert status == {"r1": "printed", "r2": "printed", "r3": "ready", "old": "ready",
                      "done": "printed", "off": "cancelled"}
    first_printed = stored["done"].printed_at
    assert Letter.objects.get(step_key="done").printed_at == first_printed  # kept
    assert Letter.objects.get(step_key="r1").printed_at is not None


def test_todays_letters_are_the_ready_ones_of_today(admin_client, stored):
    url = reverse("admin:dunning_letter_today")
    assert url.endswith("/dunning/letter/today/")
    page = admin_client.get(url)
    assert page.status_code == 200
    assert "3 letters of" in page.content.decode() and "ready to print" in page.content.decode()
    archive = opened_zip(admin_client.post(url))
    assert sorted(archive.read(n) for n in archive.namelist() if n.endswith(".pdf")) == [
        b"%PDF-1.7 r1", b"%PDF-1.7 r2", b"%PDF-1.7 r3"]
    assert set(Letter.objects.filter(status="ready").values_list("step_key", flat=True)) == {"old"}
    # Nothing left for today: back to the list with a message, no empty file.
    again = admin_client.post(url)
    assert again.status_code == 302 and again["Location"] == changelist()
    assert "No letter of" in admin_client.get(url).content.decode()


def test_the_changelist_offers_todays_letters_and_opens_each_pdf(admin_client, stored):
    page = admin_client.get(changelist()).content.decode()
    assert reverse("admin:dunning_letter_today") in page
    pdf_url = reverse("admin:dunning_letter_pdf", args=[stored["r1"].pk])
    assert pdf_url in page
    response = admin_client.get(pdf_url)
    assert response["Content-Type"] == "application/pdf"
    assert b"".join(response.streaming_content) == b"%PDF-1.7 r1"
    assert admin_client.get(changelist(), {"status__exact": "cancelled"}).context[
        "cl"].result_count == 1


@pytest.fixture
def clerk(django_user_model, fast_hasher, db):
    """Staff who may view letters but not print them."""
    user = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_letter"))
    client = Client()
    client.force_login(user)
    return user, client


def test_printing_needs_the_print_letters_permission(clerk, stored):
    user, client = clerk
    page = client.get(changelist())
    assert page.status_code == 200
    assert "download_letters" not in page.content.decode()
    assert reverse("admin:dunning_letter_today") not in page.content.decode()
    assert client.get(reverse("admin:dunning_letter_today")).status_code == 403
    assert client.post(reverse("admin:dunning_letter_today")).status_code == 403
    forged = client.post(changelist(), {"action": "download_letters",
                                        "_selected_action": [stored["r1"].pk]})
    assert forged.get("Content-Type") != "application/zip"
    assert Letter.objects.get(pk=stored["r1"].pk).status == Letter.Status.READY
    # Viewing a letter is allowed.
    assert client.get(reverse("admin:dunning_letter_pdf", args=[stored["r1"].pk])).status_code == 200
    # With the permission, the same user prints.
    user.user_permissions.add(Permission.objects.get(codename="print_letters"))
    client.force_login(user)
    opened_zip(client.post(reverse("admin:dunning_letter_today")))


def test_a_user_without_view_letter_cannot_open_a_letter(django_user_model, fast_hasher, stored):
    user = django_user_model.objects.create_user("other", password="pw", is_staff=True)
    client = Client()
    client.force_login(user)
    assert client.get(reverse("admin:dunning_letter_pdf", args=[stored["r1"].pk])).status_code == 403
    assert client.get(changelist()).status_code == 403


def test_the_case_page_timeline_entries_link_each_letter(rf, boss, stored):
    case = stored["r1"].case
    request = rf.get("/")
    request.user = boss
    entries = case_letter_entries(case, request)
    assert len(entries) == 6
    first = entries[0]
    assert first["kind"] == "letter" and first["label"] == "Letter old"
    assert first["url"] == reverse("admin:dunning_letter_pdf", args=[stored["old"].pk])
    nobody = rf.get("/")
    nobody.user = type(boss).objects.create_user("x", is_staff=True)
    assert case_letter_entries(case, nobody) == []


# -- system checks ---------------------------------------------------------------------------------
def letter_errors():
    return sorted((m.id, m.msg) for m in check_letter_settings())


def test_the_default_letter_settings_pass_the_checks():
    assert letter_errors() == []
    for size in ("A4", "letter", "a4", "Letter"):
        with override_dunning_settings(LETTER_PAGE_SIZE=size):
            assert letter_errors() == []
    with override_dunning_settings(CUSTOMER_ADDRESS_FIELD="phone",
                                   CUSTOMER_ADDRESS="tests.test_letters.address_of"):
        assert letter_errors() == []


@pytest.mark.parametrize(("settings_", "error_id", "text"), [
    ({"LETTER_PAGE_SIZE": "A5"}, "dunning.E030", "'A5' is not a page size"),
    ({"LETTER_PAGE_SIZE": None}, "dunning.E030", "None is not a page size"),
    ({"CUSTOMER_ADDRESS_FIELD": "street"}, "dunning.E031", "'street' is not a text field"),
    ({"CUSTOMER_ADDRESS": "tests.test_letters.nothing"}, "dunning.E031", "cannot be imported"),
    ({"LETTER_STORAGE": "vault"}, "dunning.E032", "'vault' is not an alias"),
])
def test_bad_letter_settings_are_reported(settings_, error_id, text):
    with override_dunning_settings(**settings_):
        [(found, message)] = letter_errors()
    assert found == error_id and text in message
