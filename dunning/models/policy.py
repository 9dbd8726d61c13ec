import re
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from ..exceptions import DunningConfigurationError
from ..sandbox import validate_message_template


class Channel(models.TextChoices):
    EMAIL = "email", _("Email")
    SMS = "sms", _("Text message (SMS)")
    LETTER = "letter", _("Letter")
    IN_APP = "in_app", _("In-app notice")
    CALL = "call", _("Phone call (call queue)")


class Action(models.TextChoices):
    NONE = "", _("None")
    SUSPEND = "suspend", _("Suspend service")
    TERMINATE = "terminate", _("Terminate account")
    # The end of the road (dunning.agency, docs/agency.md).
    AGENCY = "agency", _("Hand over to a collections agency")
    WRITE_OFF = "write_off", _("Write off")


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
    # Compliance guards (dunning.engine.compliance, docs/compliance.md).
    quiet_hours = models.JSONField(
        _("quiet hours"), default=dict, blank=True,
        help_text=_('Allowed sending window per channel in the customer\'s local time, e.g. '
                    '{"sms": ["08:00", "21:00"], "email": null}. Channels not named keep '
                    'the default (SMS and calls 08:00-21:00, email and letters any time).'),
    )
    frequency_caps = models.JSONField(
        _("frequency caps"), default=dict, blank=True,
        help_text=_('At most this many messages in so many days per customer, over all '
                    'channels and per channel, e.g. {"total": [1, 1], "per_channel": '
                    '{"sms": [2, 7]}}. Empty: at most one message a day.'),
    )
    exclude_weekends = models.BooleanField(
        _("no messages on weekends"), default=False,
        help_text=_("Messages due on a weekend wait for the next business day."),
    )
    weekend_days = models.JSONField(
        _("weekend days"), default=list, blank=True,
        help_text=_('Days that count as weekend, e.g. ["fri", "sat"]; empty: Saturday '
                    'and Sunday.'),
    )
    holidays = models.JSONField(
        _("holidays"), default=list, blank=True,
        help_text=_('Dates without messages, e.g. ["2026-12-25", "2026-12-26"].'),
    )
    regulation_f = models.BooleanField(
        _("US Regulation F"), default=False,
        help_text=_("For third-party debt collectors in the US: at most 7 call attempts "
                    "in 7 days per debt, none within 7 days of a conversation, and calls, "
                    "SMS and email only 8:00-21:00 in the customer's time."),
    )
    # Reminder fees and late-payment interest (dunning.fees, dunning.charging,
    # docs/fees.md): charged with each reminder and handed to the host.
    fee_rule = models.JSONField(
        _("reminder fee"), default=dict, blank=True,
        help_text=_('Per reminder, e.g. {"fixed": {"EUR": "5.00"}, "percent": "1", '
                    '"maximum": {"EUR": "25.00"}}; the first reminder is free unless '
                    '"first_free" is false. Empty: no fees.'),
    )
    interest_rule = models.JSONField(
        _("late-payment interest"), default=dict, blank=True,
        help_text=_('E.g. {"kind": "fixed", "rate": "8"} (percent a year), {"kind": '
                    '"eu-directive"} or {"kind": "de-bgb-288"} (statutory rates and the '
                    'EUR 40 compensation for businesses). Empty: no interest.'),
    )
    business_debtors = models.BooleanField(
        _("debtors are businesses"), default=False,
        help_text=_("The statutory interest rules and the fixed compensation treat this "
                    "policy's customers as businesses (use a policy rule to send business "
                    "customers to such a policy)."),
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
        errors.update(compliance_errors(self))
        errors.update(charge_rule_errors(self))
        if errors:
            raise ValidationError(errors)

    def charge_rules(self):
        """``(FeeRule or None, InterestRule or None)`` of the policy; ValueError names a
        bad entry (the admin validates them, see :func:`charge_rule_errors`)."""
        from ..fees import FeeRule, InterestRule

        fee = FeeRule.from_setting(self.fee_rule) if self.fee_rule else None
        interest = InterestRule.from_setting(self.interest_rule or None)
        if interest is not None and interest.rates is not None and "rates" not in self.interest_rule:
            from ..conf import dunning_settings

            table = (dunning_settings.INTEREST_RATES or {}).get(interest.kind)
            if table:
                interest = InterestRule.from_setting({**self.interest_rule, "rates": table})
        return fee, interest


def charge_rule_errors(obj, fields=("fee_rule", "interest_rule")):
    """{field: [message]} of the fee and interest rules of ``obj`` (a policy, or a step's
    own ``fee_rule``) that do not parse; an empty rule becomes ``{}``."""
    from ..fees import FeeRule, InterestRule

    parsers = {"fee_rule": FeeRule.from_setting, "interest_rule": InterestRule.from_setting}
    errors = {}
    for field in fields:
        parse = parsers[field]
        value = getattr(obj, field)
        if value in (None, ""):
            setattr(obj, field, {})
            continue
        if not isinstance(value, dict):
            errors[field] = [_("Enter an object, e.g. %(example)s.") % {
                "example": '{"fixed": {"EUR": "5.00"}}' if field == "fee_rule"
                else '{"kind": "fixed", "rate": "8"}'}]
            continue
        try:
            parse(value)
        except (ValueError, TypeError) as exc:
            errors[field] = [str(exc)]
    return errors


def compliance_errors(policy):
    """{field: [message, ...]} of the policy's compliance settings that do not parse."""
    from ..rules import compliance

    errors = {}
    checks = {
        "quiet_hours": lambda: compliance.QuietHours.from_config(policy.quiet_hours),
        "frequency_caps": lambda: compliance.FrequencyCap.from_config(policy.frequency_caps),
        "holidays": lambda: compliance.BusinessCalendar.from_config(
            policy.exclude_weekends, policy.weekend_days, policy.holidays),
    }
    for field, check in checks.items():
        try:
            check()
        except compliance.ComplianceConfigError as exc:
            errors[field] = list(exc.messages)
    if not errors:
        try:
            compliance.compliance_spec(policy)
        except compliance.ComplianceConfigError as exc:
            errors["regulation_f"] = list(exc.messages)
    return errors


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
    suspension only after a warning step, termination and write-off last, and after a
    hand-over to a collections agency nothing but a write-off.
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
        if action == Action.WRITE_OFF and index != len(ordered) - 1:
            messages.append(
                _("The write-off step '%(key)s' must be the last step.") % {"key": key}
            )
        if action == Action.AGENCY and any(
            later_action != Action.WRITE_OFF for _k, _o, later_action in ordered[index + 1:]
        ):
            messages.append(
                _("Only a write-off step may follow the agency step '%(key)s'.") % {"key": key}
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
    fallback_channel = models.CharField(
        _("fallback channel"), max_length=16, choices=Channel.choices, blank=True, default="",
        help_text=_("Used when the customer cannot be reached on the channel (no phone "
                    "number, a bounced or suppressed address) or opted out of it."),
    )
    required = models.BooleanField(
        _("legally required notice"),
        default=False,
        help_text=_(
            "Sent even to customers who opted out of this channel (a notice the law "
            "requires, such as the last notice before termination). Other steps are "
            "skipped for them."
        ),
    )
    agency = models.CharField(
        _("collections agency"), max_length=64, blank=True, default="",
        help_text=_("For a hand-over step: the key of the agency in DUNNING['AGENCIES']; "
                    "empty: DUNNING['DEFAULT_AGENCY']."),
    )
    free_of_charge = models.BooleanField(
        _("no reminder fee"), default=False,
        help_text=_("This step charges no reminder fee, whatever the policy's fee rule "
                    "says (interest is still charged with it)."),
    )
    fee_rule = models.JSONField(
        _("own reminder fee"), default=dict, blank=True,
        help_text=_("This step's fee instead of the policy's, e.g. "
                    '{"fixed": {"EUR": "10.00"}}; empty: the policy\'s fee rule.'),
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
        from ..conf import dunning_settings

        errors = {}
        if self.key == PAYMENT_RECEIVED:
            errors["key"] = _("'%(key)s' is reserved for the thank-you message.") % {
                "key": self.key}
        configured = {"email", *(dunning_settings.CHANNELS or {})}
        for field in ("channel", "fallback_channel"):
            value = getattr(self, field)
            if value and value not in configured:
                errors[field] = _("The channel '%(channel)s' is not set up on this site "
                                  "(DUNNING['CHANNELS']).") % {"channel": value}
        errors.update(charge_rule_errors(self, ("fee_rule",)))  # the step's own fee
        if self.fallback_channel and self.fallback_channel == self.channel:
            errors["fallback_channel"] = _("The fallback must be another channel.")
        # Reported on "action", which every step form shows (the agency field may not be).
        if self.action == Action.AGENCY:
            from ..conf import agency_settings

            try:
                agency_settings(self.agency)
            except DunningConfigurationError as exc:
                errors["action"] = str(exc)
        elif self.agency:
            errors["action"] = _("Only a hand-over step names a collections agency.")
        if errors:
            raise ValidationError(errors)


class MessageTemplate(models.Model):
    """The message of one step (or of ``payment-received``) in one channel and language.

    Bodies are Django template syntax, rendered in the sandbox of ``dunning.messages.rendering``
    and checked when saved by ``dunning.sandbox.validate_message_template``.
    """

    policy = models.ForeignKey(
        Policy, on_delete=models.CASCADE, related_name="templates", verbose_name=_("policy")
    )
    step_key = models.SlugField(_("step key"), max_length=64)
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, default=Channel.EMAIL
    )
    language = models.CharField(_("language"), max_length=16)
    # A/B test (dunning.variants, docs/variants.md): the templates of one step and channel
    # with different variants go to different customers, in proportion to their weights.
    variant = models.SlugField(
        _("variant"), max_length=32, blank=True, default="",
        help_text=_("For an A/B test of this step's message: a short name such as \"b\" "
                    "for another version of it. Empty: the control (A)."),
    )
    # blank: forms that leave it out (or empty) save the default 1 (see clean()).
    weight = models.PositiveSmallIntegerField(
        _("weight"), default=1, blank=True, validators=[MinValueValidator(1)],
        help_text=_("The variant's share of the customers, relative to the other variants "
                    "of the step (1 and 1: half each; 3 and 1: three in four)."),
    )
    subject = models.CharField(_("subject"), max_length=255)
    text_body = models.TextField(_("plain-text body"))
    html_body = models.TextField(_("HTML body"), blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        ordering = ["policy", "step_key", "variant", "language"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "step_key", "channel", "language", "variant"],
                name="dunning_template_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(weight__gte=1), name="dunning_template_weight_positive"
            ),
        ]

    def __str__(self):
        variant = f" ({self.variant})" if self.variant else ""
        return f"{self.step_key}{variant} [{self.language}]"

    def clean(self):
        if self.weight is None:
            self.weight = 1
        errors = {}
        for field in ("subject", "text_body", "html_body"):
            try:
                validate_message_template(getattr(self, field), self.channel or "email")
            except ValidationError as exc:
                errors[field] = exc.messages
        if errors:
            raise ValidationError(errors)


class RetryStep(models.Model):
    """A payment retry of a policy: ``offset_days`` after the failed payment that started
    the retry cycle (dunning.payments.scheduler), independent of the reminder steps but on
    the same timeline. A policy without retry steps uses ``DUNNING["PAYMENT_RETRY_OFFSETS"]``.
    """

    policy = models.ForeignKey(
        Policy, on_delete=models.CASCADE, related_name="retry_steps", verbose_name=_("policy")
    )
    key = models.SlugField(_("key"), max_length=64)
    offset_days = models.PositiveSmallIntegerField(
        _("days after the failed payment"),
        validators=[MinValueValidator(1)],
        help_text=_("Retried this many days after the payment failed (then moved to a "
                    "payday or the customer's morning when the schedule allows)."),
    )

    class Meta:
        verbose_name = _("payment retry step")
        verbose_name_plural = _("payment retry steps")
        ordering = ["policy", "offset_days", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["policy", "key"], name="dunning_retrystep_unique_key"),
            models.UniqueConstraint(
                fields=["policy", "offset_days"], name="dunning_retrystep_unique_offset"
            ),
        ]

    def __str__(self):
        return f"{self.key} (+{self.offset_days}d)"


class PolicyRule(models.Model):
    """Which policy a new case gets: the first active rule (lowest priority number) whose
    conditions all hold, else the default policy (dunning.segments, docs/segments.md)."""

    class History(models.TextChoices):
        ANY = "", _("Any")
        FIRST_TIME = "first-time", _("First time late (no earlier case)")
        REPEAT = "repeat", _("Late before (an earlier case)")
        CHRONIC = "chronic", _("Chronically late")

    name = models.CharField(_("name"), max_length=200)
    priority = models.PositiveIntegerField(
        _("priority"), default=100, help_text=_("Rules are tried from the lowest number up."))
    is_active = models.BooleanField(_("active"), default=True)
    policy = models.ForeignKey(
        Policy, on_delete=models.CASCADE, related_name="rules", verbose_name=_("policy"))
    currency = models.CharField(
        _("currency"), max_length=3, blank=True,
        help_text=_("The amount band applies to the overdue balance in this currency; "
                    "empty: any currency (and no amount band)."))
    min_amount = models.DecimalField(_("from amount"), max_digits=14, decimal_places=2,
                                     null=True, blank=True)
    max_amount = models.DecimalField(_("below amount"), max_digits=14, decimal_places=2,
                                     null=True, blank=True)
    segments = models.JSONField(
        _("customer segments"), default=list, blank=True,
        help_text=_('The customer\'s segment (DUNNING["CUSTOMER_FIELDS"]["segment"]) is one of '
                    'these, e.g. ["enterprise", "vip"]; empty: any.'))
    history = models.CharField(_("payment history"), max_length=16, choices=History.choices,
                               blank=True, default="")
    min_risk = models.DecimalField(_("risk score from"), max_digits=8, decimal_places=2,
                                   null=True, blank=True)
    max_risk = models.DecimalField(_("risk score below"), max_digits=8, decimal_places=2,
                                   null=True, blank=True)
    assign_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+", verbose_name=_("assign to"),
        help_text=_("A collector who gets the case at once (a personal path)."))

    class Meta:
        verbose_name = _("policy rule")
        verbose_name_plural = _("policy rules")
        ordering = ["priority", "pk"]

    def __str__(self):
        return f"{self.priority}: {self.name}"

    def clean(self):
        errors = {}
        if self.currency:
            if not _CURRENCY_CODE.fullmatch(self.currency):
                errors["currency"] = _("A currency code has three letters, e.g. EUR.")
            self.currency = self.currency.upper()
        elif self.min_amount is not None or self.max_amount is not None:
            errors["currency"] = _("An amount band needs its currency.")
        for low, high in (("min_amount", "max_amount"), ("min_risk", "max_risk")):
            a, b = getattr(self, low), getattr(self, high)
            if a is not None and b is not None and a >= b:
                errors[high] = _("Must be more than the lower bound.")
        if not isinstance(self.segments, list) or not all(
                isinstance(v, str) for v in self.segments):
            errors["segments"] = _('Enter a list of segment names, e.g. ["vip"].')
        if errors:
            raise ValidationError(errors)
