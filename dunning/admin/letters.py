"""Admin of the letters (dunning.channels.letter, docs/letters.md).

* **Letters** (read-only rows, ``dunning.view_letter``): filter by status and date, open a
  letter's PDF (``<letter>/pdf/``).
* **Download for printing** (permission ``dunning.print_letters``): the action "Download
  for printing (ZIP)" and the page "Today's letters" (``<admin>/dunning/letter/today/``,
  every letter created today that is still ready) give one ZIP file with each letter's
  PDF exactly as it was stored, in order, and ``letters.csv`` (one row per letter: file,
  case, customer, step, pages, address). The letters in it are marked as printed.
  One PDF per letter, not one merged PDF: printed double-sided, a merged file would put a
  letter on the back of the one before it, and the stored PDFs are the record of what
  was sent (byte for byte the same, no re-rendering).
* "Mark as printed" (a print-and-mail service took them some other way) and "Cancel
  (do not print)", with the same permission.
"""

from __future__ import annotations

import csv
import io
import tempfile
import zipfile

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ..channels.letter import today_range
from ..models import Letter
from .readonly import ReadOnlyAdminMixin

Status = Letter.Status

#: Files of more than this many bytes are written to disk while the ZIP is built.
SPOOL_MAX = 16 * 1024 * 1024


def build_zip(letters):
    """``(file, included, missing)``: a ZIP (a file object at its start) with the PDF
    of each letter (``0001-letter-<pk>-case-<case>-<step>.pdf``, in order) and
    ``letters.csv``; ``included`` the letters in it, ``missing`` those whose file is
    not in the storage (listed in the CSV, not in the ZIP)."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX)
    included, missing = [], []
    manifest = io.StringIO()
    writer = csv.writer(manifest)
    writer.writerow(["file", "letter", "case", "customer", "step", "pages", "created_at",
                     "recipient_address", "note"])
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, letter in enumerate(letters, start=1):
            name = f"{number:04d}-letter-{letter.pk}-case-{letter.case_id}-{letter.step_key}.pdf"
            try:
                with letter.pdf.open("rb") as handle:
                    archive.writestr(name, handle.read())
            except (OSError, ValueError):
                missing.append(letter)
                name, note = "", "file missing"
            else:
                included.append(letter)
                note = ""
            writer.writerow([name, letter.pk, letter.case_id, letter.customer_key,
                             letter.step_key, letter.pages, letter.created_at.isoformat(),
                             letter.recipient_address, note])
        archive.writestr("letters.csv", "\ufeff" + manifest.getvalue())
    spool.seek(0)
    return spool, included, missing


def mark_printed(pks, now=None):
    """Ready letters among ``pks`` -> printed (now); returns how many changed. A letter
    printed before keeps its first ``printed_at``."""
    return Letter.objects.filter(pk__in=list(pks), status=Status.READY).update(
        status=Status.PRINTED, printed_at=now or timezone.now()
    )


def download(modeladmin, request, letters, filename):
    """The ZIP of ``letters`` as a download; the ones in it are marked printed."""
    spool, included, missing = build_zip(letters)
    changed = mark_printed(letter.pk for letter in included)
    if missing:
        modeladmin.message_user(request, ngettext(
            "The file of %(count)d letter is missing from the storage: %(letters)s.",
            "The files of %(count)d letters are missing from the storage: %(letters)s.",
            len(missing),
        ) % {"count": len(missing), "letters": ", ".join(str(lt.pk) for lt in missing)},
            messages.ERROR)
    modeladmin.message_user(request, ngettext(
        "%(count)d letter downloaded for printing (%(new)d newly marked as printed).",
        "%(count)d letters downloaded for printing (%(new)d newly marked as printed).",
        len(included),
    ) % {"count": len(included), "new": changed}, messages.SUCCESS)
    return FileResponse(spool, as_attachment=True, filename=filename,
                        content_type="application/zip")


def _printable(modeladmin, request, queryset):
    letters = list(queryset.exclude(status=Status.CANCELLED).order_by("created_at", "pk"))
    skipped = queryset.filter(status=Status.CANCELLED).count()
    if skipped:
        modeladmin.message_user(request, ngettext(
            "%(count)d cancelled letter left out.", "%(count)d cancelled letters left out.",
            skipped,
        ) % {"count": skipped}, messages.WARNING)
    return letters


@admin.action(description=gettext_lazy("Download for printing (ZIP)"),
              permissions=["print_letters"])
def download_letters(modeladmin, request, queryset):
    letters = _printable(modeladmin, request, queryset)
    if not letters:
        modeladmin.message_user(request, _("No letter to download."), messages.WARNING)
        return None
    stamp = timezone.localtime().strftime("%Y-%m-%d-%H%M%S")
    return download(modeladmin, request, letters, f"letters-{stamp}.zip")


@admin.action(description=gettext_lazy("Mark as printed"), permissions=["print_letters"])
def mark_letters_printed(modeladmin, request, queryset):
    changed = mark_printed(queryset.values_list("pk", flat=True))
    modeladmin.message_user(request, ngettext(
        "%(count)d letter marked as printed.", "%(count)d letters marked as printed.", changed,
    ) % {"count": changed}, messages.SUCCESS)


@admin.action(description=gettext_lazy("Cancel (do not print)"), permissions=["print_letters"])
def cancel_letters(modeladmin, request, queryset):
    changed = queryset.filter(status=Status.READY).update(status=Status.CANCELLED)
    modeladmin.message_user(request, ngettext(
        "%(count)d letter cancelled.", "%(count)d letters cancelled.", changed,
    ) % {"count": changed}, messages.SUCCESS)


@admin.register(Letter)
class LetterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["pk", "created_at", "status", "case_link", "step_key", "addressee",
                    "pages", "size_kb", "printed_at", "pdf_link"]
    list_display_links = ["pk", "created_at"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter),
                   ("printed_at", admin.DateFieldListFilter), "step_key"]
    date_hierarchy = "created_at"
    search_fields = ["recipient_address", "customer_key", "step_key", "=case__pk"]
    fields = ["case_link", "case_step", "customer_key", "step_key", "recipient_address",
              "pdf_link", "pages", "size", "status", "created_at", "printed_at"]
    readonly_fields = fields
    actions = [download_letters, mark_letters_printed, cancel_letters]
    change_list_template = "dunning/letters/admin_change_list.html"

    def has_print_letters_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.print_letters")

    @admin.display(description=gettext_lazy("case"), ordering="case")
    def case_link(self, letter):
        try:
            url = reverse("admin:dunning_case_change", args=[letter.case_id],
                          current_app=self.admin_site.name)
        except NoReverseMatch:
            return letter.case_id
        return format_html('<a href="{}">{}</a>', url, letter.case_id)

    @admin.display(description=gettext_lazy("recipient"))
    def addressee(self, letter):
        return letter.recipient_name

    @admin.display(description=gettext_lazy("size (KB)"), ordering="size")
    def size_kb(self, letter):
        return f"{letter.size / 1024:.0f}"

    @admin.display(description=gettext_lazy("PDF"))
    def pdf_link(self, letter):
        if not letter.pk or not letter.pdf:
            return "-"
        url = reverse("admin:dunning_letter_pdf", args=[letter.pk],
                      current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, _("Open PDF"))

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("today/", wrap(self.today_view), name="dunning_letter_today"),
            path("<int:letter_id>/pdf/", wrap(self.pdf_view), name="dunning_letter_pdf"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["can_print_letters"] = self.has_print_letters_permission(request)
        return super().changelist_view(request, extra_context)

    def pdf_view(self, request, letter_id):
        """GET: the letter's PDF (shown in the browser); needs view permission."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        letter = Letter.objects.filter(pk=letter_id).first()
        if letter is None or not letter.pdf:
            raise Http404
        try:
            handle = letter.pdf.open("rb")
        except OSError:
            raise Http404(_("The letter's file is missing from the storage.")) from None
        return FileResponse(handle, content_type="application/pdf",
                            filename=f"letter-{letter.pk}.pdf")

    def today_view(self, request):
        """GET: how many letters of today are ready; POST: download them (ZIP) and mark
        them printed. Both need ``dunning.print_letters``."""
        if not self.has_print_letters_permission(request):
            raise PermissionDenied
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        start, end = today_range()
        letters = Letter.objects.filter(status=Status.READY, created_at__gte=start,
                                        created_at__lt=end).order_by("created_at", "pk")
        changelist = reverse("admin:dunning_letter_changelist", current_app=self.admin_site.name)
        if request.method == "POST":
            letters = list(letters)
            if not letters:
                self.message_user(request, _("No letter of today is ready to print."),
                                  messages.WARNING)
                return HttpResponseRedirect(changelist)
            return download(self, request, letters,
                            f"letters-{timezone.localdate().isoformat()}.zip")
        pages = sum(letters.values_list("pages", flat=True))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Today's letters"),
            "day": date_format(timezone.localdate(), "DATE_FORMAT"),
            "count": letters.count(),
            "pages": pages,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "dunning/letters/admin_today.html", context)


def case_letter_entries(case, request=None):
    """The case's letters as case-page timeline entries (with ``url``: the PDF), for a
    user who may view letters (none otherwise)."""
    if request is not None and not request.user.has_perm("dunning.view_letter"):
        return []
    entries = []
    for letter in Letter.objects.filter(case=case).order_by("created_at", "pk"):
        entries.append({
            "at": letter.created_at,
            "kind": "letter",
            "label": _("Letter %(step)s") % {"step": letter.step_key},
            "text": letter.recipient_address,
            "by": "",
            "outcome": letter.get_status_display(),
            "status": letter.status,
            "url": reverse("admin:dunning_letter_pdf", args=[letter.pk]),
            "url_label": ngettext("PDF, %(pages)d page", "PDF, %(pages)d pages",
                                  letter.pages) % {"pages": letter.pages},
        })
    return entries
