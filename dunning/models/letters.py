"""Letters: the PDF of a dunning step sent by post (dunning.channels.letter, docs/letters.md).

One row per letter the letter channel produced: the PDF file (in the default storage or
``DUNNING["LETTER_STORAGE"]``), the address it was printed for, and where it stands in
the printing workflow (ready -> printed, or cancelled).
"""

from django.core.files.storage import DEFAULT_STORAGE_ALIAS, storages
from django.core.signals import setting_changed
from django.db import models
from django.utils import timezone
from django.utils.functional import LazyObject, empty
from django.utils.translation import gettext_lazy as _

from ..conf import dunning_settings
from .case import Case, CaseStep


class LetterStorage(LazyObject):
    """The storage of letter PDFs: ``settings.STORAGES[DUNNING["LETTER_STORAGE"]]``, or
    the default storage when that setting is None. Looked up again whenever ``DUNNING``
    or ``STORAGES`` change (tests override them)."""

    def _setup(self):
        self._wrapped = storages[dunning_settings.LETTER_STORAGE or DEFAULT_STORAGE_ALIAS]


letter_storage = LetterStorage()


def get_letter_storage():
    """The storage of letter PDFs (the FileField's ``storage`` callable)."""
    return letter_storage


@dunning_settings.on_reload
def _reset_letter_storage():
    letter_storage._wrapped = empty


def _storages_changed(*, setting, **kwargs):
    if setting in ("STORAGES", "MEDIA_ROOT", "MEDIA_URL"):
        letter_storage._wrapped = empty


setting_changed.connect(_storages_changed)


class Letter(models.Model):
    class Status(models.TextChoices):
        READY = "ready", _("Ready to print")
        PRINTED = "printed", _("Printed")
        CANCELLED = "cancelled", _("Cancelled")

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="letters", verbose_name=_("case")
    )
    # The executed step the letter belongs to (one letter per step; empty for a letter
    # made outside the outbox).
    case_step = models.OneToOneField(
        CaseStep, on_delete=models.SET_NULL, null=True, blank=True, related_name="letter",
        verbose_name=_("executed step"),
    )
    customer_key = models.CharField(_("customer"), max_length=64, db_index=True)
    step_key = models.CharField(_("step"), max_length=64)
    recipient_address = models.TextField(
        _("recipient address"), help_text=_("The lines in the envelope's window.")
    )
    pdf = models.FileField(
        _("PDF"), upload_to="dunning/letters/%Y/%m/", storage=get_letter_storage,
        max_length=255,
    )
    pages = models.PositiveSmallIntegerField(_("pages"), default=1)
    size = models.PositiveIntegerField(_("size (bytes)"), default=0)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    printed_at = models.DateTimeField(
        _("printed at"), null=True, blank=True,
        help_text=_("When it was first downloaded for printing or marked as printed."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.READY
    )

    class Meta:
        verbose_name = _("letter")
        verbose_name_plural = _("letters")
        ordering = ["-created_at", "-pk"]
        indexes = [
            # "Today's letters": the ready ones by creation time.
            models.Index(fields=["status", "created_at"], name="dunning_letter_status_idx"),
        ]
        permissions = [
            ("print_letters", _("Can download letters for printing")),
        ]

    def __str__(self):
        return _("Letter %(pk)s (%(step)s, case %(case)s)") % {
            "pk": self.pk, "step": self.step_key, "case": self.case_id}

    @property
    def recipient_name(self):
        """The first line of the address (the name)."""
        return (self.recipient_address or "").split("\n", 1)[0]
