import re
from decimal import Decimal, InvalidOperation

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
        permissions = [
            ("edit_policy", _("Can edit dunning policies, steps and message templates")),
        ]

    def __str__(self):
        return self.name

    @property
    def is_default(self):
        from ..conf import dunning_settings

        return bool(self.key) and self.key == dunning_settings.DEFAULT_POLICY

    def clean(self):
        errors = {}
        if self.is_default and not self.is_active:
            errors["is_active"] = _(
                "This is the default policy (DUNNING['DEFAULT_POLICY']); it cannot be "
                "deactivated."
            )
        try:
            self.minimum_balance = clean_minimum_balance(self.minimum_balance)
        except ValidationError as exc:
            errors["minimum_balance"] = exc.messages
        if errors:
            raise ValidationError(errors)


_CURRENCY_CODE = re.compile(r"[A-Za-z]{3}")


def clean_minimum_balance(value):
    """The minimum balance per currency, normalised to {"EUR": "5.00"}; ValidationError
    naming every bad entry otherwise."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValidationError(
            _('Enter an object of currency codes and amounts, e.g. {"EUR": "5.00"}.')
        )
    cleaned, messages = {}, []
    for code, amount in value.items():
        if not isinstance(code, str) or not _CURRENCY_CODE.fullmatch(code):
            messages.append(
                _("'%(code)s' is not a currency code (three letters, e.g. EUR).") % {"code": code}
            )
            continue
        try:
            number = Decimal(str(amount).strip()) if not isinstance(amount, bool) else None
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite() or number < 0:
            messages.append(
                _("The minimum balance for %(code)s must be an amount of 0 or more, not %(amount)s.")
                % {"code": code.upper(), "amount": amount}
            )
            continue
        cleaned[code.upper()] = str(number)
    if messages:
        raise ValidationError(messages)
    return cleaned


def validate_step_sequence(steps):
    """Check the steps of one policy as a whole; ``steps`` are (key, offset_days, action).

    Raises ValidationError with every problem found: keys unique, offsets unique (so they
    strictly increase in the order the steps run), ``payment-received`` reserved, a
    suspension only after a warning step, termination last.
    """
    messages = []
    seen_keys, seen_offsets = set(), {}
    for key, offset, _action in steps:
        if key == PAYMENT_RECEIVED:
            messages.append(_("'%(key)s' is reserved for the thank-you message.") % {"key": key})
        elif key in seen_keys:
            messages.append(_("The key '%(key)s' is used by two steps.") % {"key": key})
        seen_keys.add(key)
        if offset in seen_offsets:
            messages.append(
                _("Steps '%(first)s' and '%(second)s' have the same offset (%(days)s days); "
                  "offsets must strictly increase.")
                % {"first": seen_offsets[offset], "second": key, "days": offset}
            )
        else:
            seen_offsets[offset] = key
    ordered = sorted(steps, key=lambda s: s[1])
    for index, (key, _offset, action) in enumerate(ordered):
        if action == Action.SUSPEND and not any(
            not earlier_action for _k, _o, earlier_action in ordered[:index]
        ):
            messages.append(
                _("The suspension step '%(key)s' needs at least one warning step before it.")
                % {"key": key}
            )
        if action == Action.TERMINATE and index != len(ordered) - 1:
            messages.append(
                _("The termination step '%(key)s' must be the last step.") % {"key": key}
            )
    if messages:
        raise ValidationError(messages)


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
        from ..rendering import validate_message_template

        errors = {}
        for field in ("subject", "text_body", "html_body"):
            try:
                validate_message_template(getattr(self, field))
            except ValidationError as exc:
                errors[field] = exc.messages
        if errors:
            raise ValidationError(errors)
