"""Serializers of the API: what goes in and what comes out.

Amounts are strings (``"120.50"``), dates ISO 8601. Customers are shown in canonical
names (``name``, ``email``, ...) through the host adapter, whatever the host's fields.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.settings import api_settings

from .. import queries
from ..engine import actions as services
from ..hosts import _to_decimal
from ..inputs import MAX_NOTE_LENGTH, negative_amount_due, validate_currency
from ..models import Case, CaseCharge, Dispute, MessageTemplate, Policy, Step
from ..models.policy import validate_step_sequence


def amount_field(**kwargs):
    """A Decimal shown as a string, unrounded."""
    return serializers.DecimalField(max_digits=None, decimal_places=None, coerce_to_string=True,
                                    read_only=True, **kwargs)


def drf_errors(exc):
    """A Django ValidationError as DRF's error shape (``__all__`` -> non_field_errors)."""
    if hasattr(exc, "error_dict"):
        detail = {}
        for name, messages in exc.message_dict.items():
            key = api_settings.NON_FIELD_ERRORS_KEY if name == NON_FIELD_ERRORS else name
            detail.setdefault(key, []).extend(messages)
        return serializers.ValidationError(detail)
    return serializers.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: exc.messages})


def note_field(**kwargs):
    """Free text staff write (a note, a reason): at most MAX_NOTE_LENGTH characters (the
    schema shows maxLength)."""
    return serializers.CharField(max_length=MAX_NOTE_LENGTH, **kwargs)


def run_check(check, value):
    """A ``services.check_*`` rule as a DRF field validation."""
    try:
        return check(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from exc



def _json_types(field):
    """The JSON types the schema gives ``field``'s input (None: anything it parses)."""
    if isinstance(field, serializers.BooleanField):
        return (bool,)
    if isinstance(field, (serializers.IntegerField, serializers.PrimaryKeyRelatedField)):
        return (int,)
    if isinstance(field, (serializers.CharField, serializers.DateField,
                          serializers.DateTimeField, serializers.DecimalField,
                          serializers.ChoiceField)):
        # Decimals are strings in the schema (drf-spectacular's default, and never a float
        # for money); choices here are all strings.
        return (str,)
    return None


class StrictTypes:
    """JSON values of the type the schema documents. DRF coerces: 0 passed for a text
    ("0"), for a boolean (false) and for an amount, so a client's mistake (a number where
    the schema says string, a string where it says boolean) was stored as something it did
    not mean. A value of another JSON type is a 400 naming the field."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            errors = {}
            for field in self._writable_fields:
                if field.field_name not in data:
                    continue
                value = data[field.field_name]
                types = _json_types(field)
                if value is None or types is None:
                    continue
                if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
                    errors[field.field_name] = [self.type_message(types[0])]
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)

    @staticmethod
    def type_message(json_type):
        return {bool: _("Enter true or false (a JSON boolean)."),
                int: _("Enter a whole number (a JSON number)."),
                str: _("Enter a JSON string.")}[json_type]


class Serializer(StrictTypes, serializers.Serializer):
    pass


class ModelSerializer(StrictTypes, serializers.ModelSerializer):
    pass


class ErrorSerializer(Serializer):
    """DRF's standard error: ``{"detail": "..."}``."""

    detail = serializers.CharField()


class RefusedSerializer(ErrorSerializer):
    """A refused case action (409): the reason in words, and as a code for send-now."""

    reason = serializers.CharField(required=False)


# -- cases ----------------------------------------------------------------------------------
class CustomerSerializer(Serializer):
    """The customer in canonical names (dunning.hosts.CustomerRow)."""

    id = serializers.CharField(source="pk", help_text=_("The customer's pk, as a string."))
    name = serializers.CharField()
    email = serializers.CharField()
    phone = serializers.CharField()
    language = serializers.CharField()
    timezone = serializers.CharField()


class UserSerializer(Serializer):
    id = serializers.IntegerField(source="pk")
    username = serializers.CharField(source="get_username")


class CaseListSerializer(serializers.ListSerializer):
    """Loads the canonical customer rows of a page in one query."""

    def to_representation(self, data):
        items = list(data.all() if hasattr(data, "all") else data)
        self.child.preload(items)
        return [self.child.to_representation(item) for item in items]


class CaseSerializer(ModelSerializer):
    customer = serializers.SerializerMethodField()
    policy = serializers.SlugRelatedField(slug_field="key", read_only=True)
    amount_overdue = serializers.SerializerMethodField(
        help_text=_("What the customer owes overdue today, as a string; null when nothing "
                    "is overdue or when it is owed in several currencies (see currency).")
    )
    currency = serializers.SerializerMethodField(
        help_text=_("The currency of amount_overdue; null when several or none.")
    )
    several_currencies = serializers.SerializerMethodField()
    oldest_due = serializers.SerializerMethodField()
    days_overdue = serializers.SerializerMethodField()
    assigned_to = UserSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Case
        list_serializer_class = CaseListSerializer
        fields = [
            "id", "status", "customer", "policy", "amount_overdue", "currency",
            "several_currencies", "oldest_due", "days_overdue", "opened_on", "closed_on",
            "last_step_key", "last_step_on", "next_due_on", "suspended", "needs_person",
            "paused_until", "pause_reason", "promised_on", "promised_amount", "assigned_to",
            "updated_at",
        ]
        read_only_fields = fields

    def preload(self, cases):
        from ..hosts import get_adapter

        missing = {c.customer_id for c in cases} - set(self._customers())
        if missing:
            self._customers().update(get_adapter().customer_rows(missing))

    def _customers(self):
        return self.context.setdefault("dunning_customers", {})

    def to_representation(self, instance):
        if instance.customer_id not in self._customers():
            self.preload([instance])
        return super().to_representation(instance)

    @staticmethod
    def _today():
        return queries._today()

    @extend_schema_field(CustomerSerializer(allow_null=True))
    def get_customer(self, case):
        row = self._customers().get(case.customer_id)
        if row is None:
            return None
        return CustomerSerializer(row).data

    def get_amount_overdue(self, case) -> str | None:
        amount = getattr(case, queries.AMOUNT, None)
        if amount is None or queries.owing_currency(case) is None:
            return None
        return f"{_to_decimal(amount):f}"

    def get_currency(self, case) -> str | None:
        return queries.owing_currency(case) or None

    def get_several_currencies(self, case) -> bool:
        return getattr(case, queries.AMOUNT, None) is not None and queries.owing_currency(
            case) is None

    @extend_schema_field(serializers.DateField(allow_null=True))
    def get_oldest_due(self, case):
        oldest = getattr(case, queries.OLDEST_DUE, None)
        if oldest is None:
            return None
        return (oldest.date() if hasattr(oldest, "date") else oldest).isoformat()

    def get_days_overdue(self, case) -> int | None:
        return queries.days_overdue(case)


class InvoiceSerializer(Serializer):
    number = serializers.CharField()
    amount_due = amount_field()
    currency = serializers.CharField()
    due_date = serializers.DateField()
    days_overdue = serializers.IntegerField(help_text=_("0 when not yet due."))


class TotalSerializer(Serializer):
    currency = serializers.CharField()
    amount = amount_field()
    invoices = serializers.IntegerField()
    display = serializers.CharField(help_text=_("Formatted for the request's language."))


class DisputeSerializer(ModelSerializer):
    opened_by = serializers.SerializerMethodField()

    class Meta:
        model = Dispute
        fields = ["id", "invoice_number", "reason", "opened_at", "opened_by", "resolved_at",
                  "resolution"]
        read_only_fields = fields

    def get_opened_by(self, dispute) -> str | None:
        return dispute.opened_by.get_username() if dispute.opened_by else None


class ChargeSerializer(ModelSerializer):
    """A reminder fee, interest or fixed compensation charged with a reminder
    (dunning.charging)."""

    amount = serializers.SerializerMethodField()

    class Meta:
        model = CaseCharge
        fields = ["id", "step_key", "kind", "invoice_number", "amount", "currency",
                  "period_start", "period_end", "rate", "created_at"]
        read_only_fields = fields

    def get_amount(self, charge) -> str:
        """In the currency's minor units, as text."""
        return charge.as_dict()["amount"]


class DeliverySerializer(Serializer):
    at = serializers.DateTimeField()
    event = serializers.CharField()
    description = serializers.CharField()


class TimelineEntrySerializer(Serializer):
    at = serializers.DateTimeField()
    kind = serializers.CharField(help_text=_("'message' for an executed step, else the "
                                             "event kind (note, call, paused, ...)."))
    label = serializers.CharField()
    text = serializers.CharField()
    by = serializers.CharField(help_text=_("Who did it: the customer (self-service page), a "
                                           "user's name (marked '(API)' through the API), "
                                           "'dunning run' or 'system'."))
    by_kind = serializers.ChoiceField(
        choices=["system", "customer", "staff", "api"], required=False,
        help_text=_("Events only: system, customer, staff or api."))
    outcome = serializers.CharField()
    status = serializers.CharField(required=False, help_text=_("Messages only."))
    delivery = DeliverySerializer(many=True, required=False, help_text=_("Messages only."))


class CaseDetailSerializer(CaseSerializer):
    invoices = serializers.SerializerMethodField()
    totals = serializers.SerializerMethodField()
    disputes = DisputeSerializer(many=True, read_only=True)
    charges = ChargeSerializer(many=True, read_only=True)
    timeline = serializers.SerializerMethodField()

    class Meta(CaseSerializer.Meta):
        fields = [*CaseSerializer.Meta.fields, "invoices", "totals", "disputes", "charges",
                  "timeline"]
        read_only_fields = fields

    @extend_schema_field(InvoiceSerializer(many=True))
    def get_invoices(self, case):
        from ..hosts import ANNOTATION_PREFIX, get_adapter

        adapter = get_adapter()
        today = self._today()
        open_invoices = adapter.annotated_invoices().filter(**{
            adapter.customer_annotation: case.customer_id,
            ANNOTATION_PREFIX + "amount_due__gt": 0,
        })
        rows = sorted(adapter.invoice_rows(open_invoices), key=lambda r: (r.due_date, r.number))
        return InvoiceSerializer([
            {"number": r.number, "amount_due": r.amount_due, "currency": r.currency,
             "due_date": r.due_date, "days_overdue": max((today - r.due_date).days, 0)}
            for r in rows
        ], many=True).data

    @extend_schema_field(TotalSerializer(many=True))
    def get_totals(self, case):
        return TotalSerializer(queries.totals(Case.objects.filter(pk=case.pk)), many=True).data

    @extend_schema_field(TimelineEntrySerializer(many=True))
    def get_timeline(self, case):
        from ..queries.timeline import timeline

        return TimelineEntrySerializer(timeline(case), many=True).data


# -- case actions: the input ------------------------------------------------------------------
class AssignInput(Serializer):
    collector = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model()._default_manager.none(),
        help_text=_("The id of an active staff user."),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["collector"].queryset = get_user_model()._default_manager.filter(
            is_staff=True, is_active=True
        )


class NoteInput(Serializer):
    text = note_field()


class CallInput(Serializer):
    outcome = serializers.ChoiceField(choices=services.CALL_OUTCOMES)
    text = note_field(required=False, allow_blank=True, default="")
    inbound = serializers.BooleanField(
        required=False, default=False,
        help_text=_("The customer called us: not a call attempt under Regulation F."))


class PauseInput(Serializer):
    reason = note_field()
    until = serializers.DateField(
        required=False, allow_null=True, default=None,
        help_text=_("Leave empty to pause until someone resumes the case."),
    )

    def validate_until(self, value):
        return run_check(services.check_pause_until, value)


class PromiseInput(Serializer):
    date = serializers.DateField()
    amount = serializers.DecimalField(max_digits=14, decimal_places=2)

    def validate_date(self, value):
        return run_check(services.check_promise_date, value)

    def validate_amount(self, value):
        return run_check(services.check_promise_amount, value)


class DisputeInput(Serializer):
    invoice_number = serializers.CharField(
        max_length=255, help_text=_("The number of one of the case's open invoices."))
    reason = note_field()


class ResolveDisputesInput(Serializer):
    resolution = note_field()


class WriteOffInput(Serializer):
    reason = note_field()


class SentStepSerializer(Serializer):
    step_key = serializers.CharField()
    status = serializers.CharField()
    failure = serializers.CharField(help_text=_("Why it could not be sent; empty if it was."))


class SendNowSerializer(Serializer):
    sent = SentStepSerializer(many=True)
    resolved = serializers.BooleanField(help_text=_("The case was paid already and is now "
                                                    "resolved."))
    case = CaseDetailSerializer()


# -- policies, steps, templates ---------------------------------------------------------------
class ModelCleanMixin:
    """Validates with the model's ``full_clean``, as the admin does, so that the API gives
    the admin's errors."""

    def clean_instance(self, attrs, **clean):
        instance = self.instance or self.Meta.model()
        if self.instance is not None:
            # A copy: a failed validation leaves the caller's object alone.
            instance = type(instance)._default_manager.get(pk=instance.pk)
        for name, value in attrs.items():
            setattr(instance, name, value)
        try:
            instance.full_clean(**clean)
        except DjangoValidationError as exc:
            raise drf_errors(exc) from exc
        return instance


class StepSerializer(ModelCleanMixin, ModelSerializer):
    class Meta:
        model = Step
        fields = ["id", "policy", "key", "offset_days", "channel", "action", "free_of_charge",
                  "fee_rule"]
        validators = []  # the admin's checks: full_clean and validate_step_sequence

    def validate(self, attrs):
        if self.instance is not None and "policy" in attrs and attrs["policy"] != (
            self.instance.policy
        ):
            raise serializers.ValidationError(
                {"policy": [_("A step cannot move to another policy.")]}
            )
        # Duplicate keys and offsets are reported in plain words by the sequence check
        # (as in the admin's step formset), not by the unique constraints.
        instance = self.clean_instance(attrs, validate_unique=False, validate_constraints=False)
        check_sequence(instance.policy, replace=instance)
        return attrs


def check_sequence(policy, *, replace=None, remove=None):
    """validate_step_sequence over ``policy``'s steps with ``replace`` saved and
    ``remove`` deleted; a DRF ValidationError (non_field_errors) when it fails."""
    steps = [s for s in policy.steps.all() if s.pk not in {
        getattr(replace, "pk", None), getattr(remove, "pk", None)} - {None}]
    if replace is not None:
        steps.append(replace)
    try:
        validate_step_sequence([(s.key, s.offset_days, s.action or "") for s in steps])
    except DjangoValidationError as exc:
        raise drf_errors(exc) from exc


class PolicySerializer(ModelCleanMixin, ModelSerializer):
    steps = serializers.SerializerMethodField()

    class Meta:
        model = Policy
        fields = ["id", "key", "name", "description", "is_active", "min_gap_days",
                  "grace_days", "minimum_balance", "fee_rule", "interest_rule",
                  "business_debtors", "steps", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]
        validators = []
        extra_kwargs = {"key": {"validators": []}}

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, policy):
        steps = sorted(policy.steps.all(), key=lambda s: (s.offset_days, s.pk))
        return StepSerializer(steps, many=True).data

    def validate(self, attrs):
        instance = self.clean_instance(attrs)
        attrs["minimum_balance"] = instance.minimum_balance
        for name in ("fee_rule", "interest_rule"):
            if name in attrs:
                attrs[name] = getattr(instance, name)
        return attrs


class MessageTemplateSerializer(ModelCleanMixin, ModelSerializer):
    class Meta:
        model = MessageTemplate
        fields = ["id", "policy", "step_key", "channel", "language", "variant", "weight",
                  "subject", "text_body", "html_body", "updated_at"]
        read_only_fields = ["updated_at"]
        validators = []

    def validate(self, attrs):
        self.clean_instance(attrs)
        return attrs


# -- invoices in ------------------------------------------------------------------------------
class BulkCustomerSerializer(Serializer):
    email = serializers.EmailField(
        max_length=254, help_text=_("The customer is found by this address, or created."))
    name = serializers.CharField(max_length=200, required=False,
                                 help_text=_("Needed when the customer is new."))
    phone = serializers.CharField(max_length=40, required=False, allow_blank=True)
    language = serializers.CharField(max_length=16, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, allow_blank=True)
    customer_since = serializers.DateField(
        required=False, allow_null=True,
        help_text=_("When they became a customer (the templates' history)."))


class BulkInvoiceSerializer(Serializer):
    number = serializers.CharField(max_length=64)
    customer = BulkCustomerSerializer()
    amount_due = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0,
        error_messages={"min_value": lazy(negative_amount_due, str)()},
        help_text=_("The open balance (0 once paid); never negative."))
    currency = serializers.CharField(
        max_length=3, help_text=_("The ISO 4217 code of a currency in use (EUR, USD, ...; "
                                  "not XXX or XTS); lower case is taken as upper case."))
    due_date = serializers.DateField()
    paid_on = serializers.DateField(
        required=False, allow_null=True,
        help_text=_("The day it was paid in full (the templates' history); left as it "
                    "is when not given."))

    def validate_currency(self, value):
        value = value.strip().upper()
        try:
            validate_currency(value)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return value


class BulkInvoicesInput(Serializer):
    invoices = BulkInvoiceSerializer(many=True)


class BulkRowResultSerializer(Serializer):
    index = serializers.IntegerField()
    number = serializers.CharField()
    id = serializers.IntegerField()
    result = serializers.ChoiceField(choices=["created", "updated", "unchanged"])


class BulkInvoicesResultSerializer(Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    customers_created = serializers.IntegerField()
    rows = BulkRowResultSerializer(many=True)


class BulkRowErrorSerializer(Serializer):
    index = serializers.IntegerField()
    errors = serializers.DictField()


class BulkConflictRowSerializer(BulkRowErrorSerializer):
    number = serializers.CharField(help_text=_("The invoice number."))


class BulkInvoicesConflictSerializer(Serializer):
    detail = serializers.CharField()
    rows = BulkConflictRowSerializer(many=True, required=False, help_text=_(
        "Each row whose invoice belongs to another customer, and why."))


class BulkInvoicesErrorSerializer(Serializer):
    rows = BulkRowErrorSerializer(many=True, required=False)
    invoices = serializers.ListField(child=serializers.CharField(), required=False)
    detail = serializers.CharField(required=False)


# -- payment events ---------------------------------------------------------------------------
PAYMENT_EVENT_TYPES = [
    ("invoice.paid", _("The invoice was paid")),
    ("payment.failed", _("A payment of the invoice failed")),
]


class PaymentEventInput(Serializer):
    type = serializers.ChoiceField(choices=PAYMENT_EVENT_TYPES)
    invoice = serializers.CharField(max_length=255, help_text=_("The invoice number."))
    id = serializers.CharField(
        max_length=200, required=False,
        help_text=_("The event's id at its source: an event id seen before is not applied "
                    "again (the first answer is repeated, with duplicate=true)."),
    )
    amount_due = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=0, required=False,
        help_text=_("invoice.paid on the shipped Invoice model: the balance left "
                    "(default 0)."),
    )
    decline_code = serializers.CharField(
        max_length=64, required=False, allow_blank=True,
        help_text=_("payment.failed: the provider's decline code (e.g. insufficient_funds, "
                    "expired_card): soft declines are retried, hard ones ask for a new method."),
    )
    payment_method = serializers.CharField(
        max_length=255, required=False, allow_blank=True,
        help_text=_("payment.failed: the id of the stored method that was declined."),
    )


class RunSummarySerializer(Serializer):
    opened = serializers.IntegerField()
    executed = serializers.DictField(child=serializers.IntegerField())
    resolved = serializers.IntegerField()
    terminated = serializers.IntegerField()
    sent = serializers.IntegerField()
    failed = serializers.IntegerField()


class EventCaseSerializer(Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    last_step_key = serializers.CharField()


class PaymentEventResultSerializer(Serializer):
    id = serializers.CharField(allow_null=True)
    type = serializers.CharField()
    invoice = serializers.CharField()
    duplicate = serializers.BooleanField()
    run = RunSummarySerializer()
    case = EventCaseSerializer(allow_null=True, help_text=_(
        "The customer's case after the event (null when there is none, or when you may "
        "not see it)."))


# -- reports ----------------------------------------------------------------------------------
class CurrencyAmountSerializer(Serializer):
    currency = serializers.CharField()
    amount = amount_field()


class OpenAmountSerializer(CurrencyAmountSerializer):
    invoices = serializers.IntegerField()


class OpenSerializer(Serializer):
    count = serializers.IntegerField()
    amounts = OpenAmountSerializer(many=True)


def rate_field():
    return amount_field(allow_null=True, help_text=_("A share from 0 to 1, as a string; "
                                                     "null when there is nothing to divide."))


class RecoverySerializer(Serializer):
    days = serializers.IntegerField()
    closed = serializers.IntegerField()
    resolved = serializers.IntegerField()
    rate = rate_field()
    recovered = CurrencyAmountSerializer(many=True)


class DaysToCollectSerializer(Serializer):
    cases = serializers.IntegerField()
    days = amount_field(allow_null=True)


class PromisesSerializer(Serializer):
    days = serializers.IntegerField()
    grace_days = serializers.IntegerField()
    promises = serializers.IntegerField()
    kept = serializers.IntegerField()
    broken = serializers.IntegerField()
    pending = serializers.IntegerField()
    rate = rate_field()


class AgingCurrencySerializer(CurrencyAmountSerializer):
    count = serializers.IntegerField()


class AgingBucketSerializer(Serializer):
    bucket = serializers.CharField()
    count = serializers.IntegerField()
    currencies = AgingCurrencySerializer(many=True)


class StepEffectivenessSerializer(Serializer):
    step_key = serializers.CharField()
    sent = serializers.IntegerField()
    paid = serializers.IntegerField()
    rate = rate_field()


class VariantReportSerializer(Serializer):
    """One A/B variant of a step (dunning.variants.variant_report)."""

    policy = serializers.CharField()
    step_key = serializers.CharField()
    variant = serializers.CharField(allow_blank=True, help_text=_('"": the control (A).'))
    control = serializers.BooleanField()
    sent = serializers.IntegerField()
    recovered = serializers.IntegerField()
    rate = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True, help_text=_("95 % Wilson score interval."))
    high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(
        allow_null=True, help_text=_("Two-proportion z-test against the control."))


class ReportsSerializer(Serializer):
    today = serializers.DateField()
    open = OpenSerializer()
    recovery = RecoverySerializer(many=True)
    days_to_collect = DaysToCollectSerializer()
    promises = PromisesSerializer()
    aging = AgingBucketSerializer(many=True)
    steps = StepEffectivenessSerializer(many=True)
