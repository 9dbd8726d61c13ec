from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")


class Action(models.TextChoices):
    NONE = "", _("None")
    SUSPEND = "suspend", _("Suspend service")
    TERMINATE = "terminate", _("Terminate account")


# The thank-you message after payment; not a step of the sequence but a message key.
PAYMENT_RECEIVED = "payment-received"


class Policy(models.Model):
    key = models.SlugField(_("key"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    description = models.TextField(_("description"), blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    min_gap_days = models.PositiveSmallIntegerField(
        _("minimum gap (days)"),
        default=3,
        help_text=_("At least this many days between two steps of one case."),
    )
    grace_days = models.PositiveSmallIntegerField(
        _("grace days"), default=0, help_text=_("Added to every step's offset.")
    )
    minimum_balance = models.JSONField(
        _("minimum balance"),
        default=dict,
        blank=True,
        help_text=_('Per currency, e.g. {"EUR": "5.00"}: nobody owing less is dunned.'),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("policy")
        verbose_name_plural = _("policies")
        ordering = ["key"]

    def __str__(self):
        return self.name


class Step(models.Model):
    policy = models.ForeignKey(
        Policy, on_delete=models.CASCADE, related_name="steps", verbose_name=_("policy")
    )
    key = models.SlugField(_("key"), max_length=64)
    offset_days = models.PositiveSmallIntegerField(
        _("offset (days past due)"),
        help_text=_("The step is due once the oldest open invoice is this many days overdue."),
    )
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, default=Channel.EMAIL
    )
    action = models.CharField(
        _("action"), max_length=16, choices=Action.choices, default=Action.NONE, blank=True
    )

    class Meta:
        verbose_name = _("step")
        verbose_name_plural = _("steps")
        ordering = ["policy", "offset_days", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "key"], name="dunning_step_unique_key"),
            models.UniqueConstraint(
                fields=["policy", "offset_days"], name="dunning_step_unique_offset"
            ),
        ]

    def __str__(self):
        return f"{self.key} (+{self.offset_days}d)"

    def clean(self):
        if self.key == PAYMENT_RECEIVED:
            raise ValidationError(
                {"key": _("'%(key)s' is reserved for the thank-you message.") % {"key": self.key}}
            )


class MessageTemplate(models.Model):
    """The message of one step (or of ``payment-received``) in one channel and language.

    Bodies are Django template syntax, rendered in the sandbox of ``dunning.rendering``.
    """

    policy = models.ForeignKey(
        Policy, on_delete=models.CASCADE, related_name="templates", verbose_name=_("policy")
    )
    step_key = models.SlugField(_("step key"), max_length=64)
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, default=Channel.EMAIL
    )
    language = models.CharField(_("language"), max_length=16)
    subject = models.CharField(_("subject"), max_length=255)
    text_body = models.TextField(_("plain-text body"))
    html_body = models.TextField(_("HTML body"), blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["policy", "step_key", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "step_key", "channel", "language"],
                name="dunning_template_unique",
            )
        ]

    def __str__(self):
        return f"{self.step_key} [{self.language}]"

    def clean(self):
        from ..rendering import validate_template_source

        errors = {}
        for field in ("subject", "text_body", "html_body"):
            try:
                validate_template_source(getattr(self, field))
            except ValidationError as exc:
                errors[field] = exc.messages
        if errors:
            raise ValidationError(errors)
