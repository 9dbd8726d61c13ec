"""Import and export (django-import-export) of policies, cases and the shipped models.

* ``PolicyResource``: one row per policy, its steps and message templates as JSON in the
  ``steps`` and ``templates`` columns; a policy exported from one site imports into another
  unchanged. A row whose steps or templates are not valid is reported and nothing is saved.
* ``CaseResource``: export only, one row per case with its timeline as text.
* ``CustomerResource`` / ``InvoiceResource``: the shipped default models; invoices refer to
  their customer by email address.

Every resource rolls the whole import back when a single row is bad, and escapes text cells
that a spreadsheet would run as a formula (leading ``=``, ``+``, ``-``, ``@``, tab, CR).
"""

import csv
import json
import re

from django.contrib import admin
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export import fields, resources, widgets
from import_export.formats.base_formats import CSV

from ..inputs import invoice_of_another_customer
from ..models import Case, Customer, Invoice, MessageTemplate, Policy, RetryStep, Step
from ..models.policy import validate_step_sequence

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?\d+(\.\d+)?")


def escape_formula(value):
    """Prefix a text cell a spreadsheet would evaluate with ``'`` (OWASP's advice).

    Plain numbers such as ``-5.00`` stay as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(
        value
    ):
        return "'" + value
    return value


def unescape_formula(value):
    """Undo :func:`escape_formula` on import, so an export imports back unchanged."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1:].startswith(
        FORMULA_PREFIXES
    ):
        return value[1:]
    return value


class SafeResourceMixin:
    """Escapes formulae on export; on import, a bad row rolls back every row."""

    def export_field(self, field, instance, **kwargs):
        return escape_formula(super().export_field(field, instance, **kwargs))

    def before_import_row(self, row, **kwargs):
        for column, value in list(row.items()):
            row[column] = unescape_formula(value)
        super().before_import_row(row, **kwargs)

    def import_data(self, dataset, dry_run=False, raise_errors=False, use_transactions=None,
                    collect_failed_rows=False, rollback_on_validation_errors=True, **kwargs):
        # All or nothing: invalid rows roll back the valid ones too (also outside the admin).
        return super().import_data(
            dataset, dry_run=dry_run, raise_errors=raise_errors, use_transactions=True,
            collect_failed_rows=collect_failed_rows, rollback_on_validation_errors=True,
            **kwargs,
        )


# -- policies with their steps and templates -------------------------------------------


class PolicyByKeyWidget(widgets.ForeignKeyWidget):
    def __init__(self):
        super().__init__(Policy, field="key")

    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value, row=row, **kwargs)
        except ObjectDoesNotExist as exc:
            raise ValueError(
                _("There is no policy with the key '%(key)s'.") % {"key": value}
            ) from exc

class PolicyCSV(CSV):
    """CSV whose cells may outgrow the csv module's default limit (128 KiB): a policy's
    ``templates`` cell holds every message text of the policy, in every channel and
    language (the shipped policy alone comes close)."""

    CELL_LIMIT = 64 * 1024 * 1024

    def create_dataset(self, in_stream, **kwargs):
        limit = csv.field_size_limit()
        csv.field_size_limit(max(limit, self.CELL_LIMIT))
        try:
            return super().create_dataset(in_stream, **kwargs)
        finally:
            csv.field_size_limit(limit)


STEP_FIELDS = ("key", "offset_days", "channel", "fallback_channel", "action", "required",
               "agency", "free_of_charge", "fee_rule")
RETRY_STEP_FIELDS = ("key", "offset_days")
# variant and weight: A/B variants (dunning.variants); absent in older exports, which
# import with the defaults (the control, weight 1).
TEMPLATE_FIELDS = ("step_key", "channel", "language", "variant", "weight", "subject",
                   "text_body", "html_body")


def _load_json_list(value, column):
    if value in (None, ""):
        return []
    if isinstance(value, list):
        return value
    try:
        data = json.loads(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(
            _("The column '%(column)s' is not valid JSON: %(error)s")
            % {"column": column, "error": exc}
        ) from exc
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValidationError(
            _("The column '%(column)s' must be a JSON list of objects.") % {"column": column}
        )
    return data


def _error_text(exc):
    if hasattr(exc, "message_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}" for name, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


class PolicyResource(SafeResourceMixin, resources.ModelResource):
    steps = fields.Field(column_name="steps")
    retry_steps = fields.Field(column_name="retry_steps")
    templates = fields.Field(column_name="templates")

    class Meta:
        model = Policy
        import_id_fields = ["key"]
        fields = ["key", "name", "description", "is_active", "min_gap_days", "grace_days",
                  "minimum_balance", "quiet_hours", "frequency_caps", "exclude_weekends",
                  "weekend_days", "holidays", "regulation_f", "fee_rule", "interest_rule",
                  "business_debtors", "steps", "retry_steps", "templates"]
        export_order = fields
        clean_model_instances = True
        skip_unchanged = False

    def get_queryset(self):
        return Policy.objects.prefetch_related("steps", "retry_steps", "templates")

    def filter_export(self, queryset, **kwargs):
        return queryset.prefetch_related("steps", "retry_steps", "templates")

    def dehydrate_steps(self, policy):
        steps = sorted(policy.steps.all(), key=lambda step: step.offset_days)
        return json.dumps(
            [{name: getattr(step, name) for name in STEP_FIELDS} for step in steps],
            ensure_ascii=False,
        )

    def dehydrate_retry_steps(self, policy):
        steps = sorted(policy.retry_steps.all(), key=lambda step: step.offset_days)
        return json.dumps(
            [{name: getattr(step, name) for name in RETRY_STEP_FIELDS} for step in steps],
            ensure_ascii=False,
        )

    def dehydrate_templates(self, policy):
        templates = sorted(
            policy.templates.all(), key=lambda t: (t.step_key, t.channel, t.variant, t.language)
        )
        return json.dumps(
            [{name: getattr(t, name) for name in TEMPLATE_FIELDS} for t in templates],
            ensure_ascii=False,
        )

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        if "steps" in row:
            try:
                instance._dunning_steps = self._clean_steps(row["steps"])
            except ValidationError as exc:
                errors["steps"] = exc.messages
        if "retry_steps" in row:
            try:
                instance._dunning_retry_steps = self._clean_retry_steps(row["retry_steps"])
            except ValidationError as exc:
                errors["retry_steps"] = exc.messages
        if "templates" in row:
            try:
                instance._dunning_templates = self._clean_templates(row["templates"])
            except ValidationError as exc:
                errors["templates"] = exc.messages
        if errors:
            raise ValidationError(errors)

    @staticmethod
    def _build_rows(value, column, model, names, unknown_text, row_text):
        """Unsaved ``model`` rows from a JSON column: (rows, messages) naming each bad row."""
        rows, messages = [], []
        for item in _load_json_list(value, column):
            unknown = set(item) - set(names)
            if unknown:
                messages.append(unknown_text % {"names": ", ".join(sorted(unknown))})
                continue
            row = model(**{name: item[name] for name in names if name in item})
            try:
                row.full_clean(exclude=["policy"], validate_unique=False,
                               validate_constraints=False)
            except ValidationError as exc:
                messages.append(row_text % {"key": item.get("key", "?"),
                                            "error": _error_text(exc)})
                continue
            rows.append(row)
        return rows, messages

    def _clean_steps(self, value):
        steps, messages = self._build_rows(
            value, "steps", Step, STEP_FIELDS, _("Unknown step attributes: %(names)s"),
            _("Step '%(key)s': %(error)s"))
        if not messages:
            try:
                validate_step_sequence([(s.key, s.offset_days, s.action) for s in steps])
            except ValidationError as exc:
                messages.extend(exc.messages)
        if messages:
            raise ValidationError(messages)
        return steps

    def _clean_retry_steps(self, value):
        steps, messages = self._build_rows(
            value, "retry_steps", RetryStep, RETRY_STEP_FIELDS,
            _("Unknown retry step attributes: %(names)s"), _("Retry step '%(key)s': %(error)s"))
        for what in ("key", "offset_days"):
            values = [getattr(step, what) for step in steps]
            if len(values) != len(set(values)):
                messages.append(_("Two retry steps have the same %(what)s.") % {"what": what})
        if messages:
            raise ValidationError(messages)
        return steps

    def _clean_templates(self, value):
        templates, messages, seen = [], [], set()
        for item in _load_json_list(value, "templates"):
            unknown = set(item) - set(TEMPLATE_FIELDS)
            if unknown:
                messages.append(_("Unknown template attributes: %(names)s") % {
                    "names": ", ".join(sorted(unknown))})
                continue
            template = MessageTemplate(
                **{name: item[name] for name in TEMPLATE_FIELDS if name in item}
            )
            if item.get("variant") is None:
                template.variant = ""
            variant = f" ({template.variant})" if template.variant else ""
            label = f"{item.get('step_key', '?')}{variant} [{item.get('language', '?')}]"
            try:
                template.full_clean(exclude=["policy"], validate_unique=False,
                                    validate_constraints=False)
            except ValidationError as exc:
                messages.append(_("Template %(template)s: %(error)s") % {
                    "template": label, "error": _error_text(exc)})
                continue
            identity = (template.step_key, template.channel, template.language, template.variant)
            if identity in seen:
                messages.append(_("Template %(template)s appears twice.") % {"template": label})
            seen.add(identity)
            templates.append(template)
        if messages:
            raise ValidationError(messages)
        return templates

    def after_save_instance(self, instance, row, **kwargs):
        super().after_save_instance(instance, row, **kwargs)
        if kwargs.get("dry_run") and not kwargs.get("using_transactions"):
            return
        steps = getattr(instance, "_dunning_steps", None)
        if steps is not None:
            instance.steps.all().delete()
            for step in steps:
                step.policy = instance
            Step.objects.bulk_create(steps)
        retry_steps = getattr(instance, "_dunning_retry_steps", None)
        if retry_steps is not None:
            instance.retry_steps.all().delete()
            for step in retry_steps:
                step.policy = instance
            RetryStep.objects.bulk_create(retry_steps)
        templates = getattr(instance, "_dunning_templates", None)
        if templates is not None:
            instance.templates.all().delete()
            for template in templates:
                template.policy = instance
            MessageTemplate.objects.bulk_create(templates)


class MessageTemplateResource(SafeResourceMixin, resources.ModelResource):
    """Templates on their own, keyed by policy key, step key, channel and language."""

    policy = fields.Field(
        column_name="policy", attribute="policy", widget=PolicyByKeyWidget()
    )

    class Meta:
        model = MessageTemplate
        import_id_fields = ["policy", "step_key", "channel", "language", "variant"]
        fields = ["policy", *TEMPLATE_FIELDS]
        export_order = fields
        clean_model_instances = True

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("policy")

    def before_import(self, dataset, **kwargs):
        # An export from before A/B variants has no variant column: its rows are the
        # controls. (Without a weight column, weights stay as they are, new rows get 1.)
        if dataset.headers and "variant" not in dataset.headers:
            dataset.append_col([""] * dataset.height, header="variant")
        super().before_import(dataset, **kwargs)

    def before_import_row(self, row, **kwargs):
        super().before_import_row(row, **kwargs)
        if row.get("variant") is None:  # an empty spreadsheet cell
            row["variant"] = ""
        if "weight" in row and row["weight"] in (None, ""):
            row["weight"] = 1


# -- cases and their timeline (export only) --------------------------------------------


class CaseResource(SafeResourceMixin, resources.ModelResource):
    customer = fields.Field(column_name="customer")
    policy = fields.Field(column_name="policy", attribute="policy__key")
    timeline = fields.Field(column_name="timeline")

    class Meta:
        model = Case
        fields = ["id", "customer", "status", "policy", "last_step_key", "last_step_on",
                  "opened_on", "closed_on", "suspended", "needs_person", "timeline"]
        export_order = fields

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("customer", "policy").prefetch_related(
            "steps", "events"
        )

    def get_queryset(self):
        return self.filter_export(Case.objects.all())

    def dehydrate_customer(self, case):
        return str(case.customer)

    def dehydrate_timeline(self, case):
        lines = []
        for step in case.steps.all():
            line = f"{step.executed_on.isoformat()} {step.step_key} {step.status}"
            if step.reason:
                line += f" ({step.reason})"
            lines.append((step.created_at, line))
        for event in case.events.all():
            line = f"{event.created_at.date().isoformat()} {event.kind}"
            if event.message:
                line += f" {event.message}"
            lines.append((event.created_at, line))
        lines.sort(key=lambda pair: pair[0])
        return "\n".join(line for _at, line in lines)

    def import_data(self, *args, **kwargs):
        raise NotImplementedError("Cases are export only.")


@admin.action(
    permissions=["view"],
    description=gettext_lazy("Export selected cases with their timeline (CSV)"),
)
def export_cases_csv(modeladmin, request, queryset):
    """Admin action: the selected cases as CSV, one row per case with its timeline."""
    content = CSV().export_data(CaseResource().export(queryset.order_by("pk")))
    response = HttpResponse(content, content_type="text/csv; charset=utf-8")
    filename = f"dunning-cases-{timezone.localdate().isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# -- the shipped default customers and invoices ---------------------------------------


class CustomerResource(SafeResourceMixin, resources.ModelResource):
    class Meta:
        model = Customer
        fields = ["id", "name", "email", "phone", "language", "timezone", "customer_since"]
        export_order = fields
        clean_model_instances = True


class CustomerByEmailWidget(widgets.ForeignKeyWidget):
    """The invoice's customer by email address, with a readable error if unknown."""

    def __init__(self):
        super().__init__(Customer, field="email")

    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value, row=row, **kwargs)
        except ObjectDoesNotExist as exc:
            raise ValueError(
                _("There is no customer with the email address '%(email)s'.") % {"email": value}
            ) from exc
        except Customer.MultipleObjectsReturned as exc:
            raise ValueError(
                _("Several customers have the email address '%(email)s'.") % {"email": value}
            ) from exc


class AmountWidget(widgets.DecimalWidget):
    """A Decimal amount; anything else is a readable error on its row."""

    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value, row=row, **kwargs)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise ValueError(_("'%(value)s' is not an amount.") % {"value": value}) from exc


class DueDateWidget(widgets.DateWidget):
    """A date as YYYY-MM-DD (or a spreadsheet date); anything else is a readable error."""

    def __init__(self):
        super().__init__("%Y-%m-%d")

    def clean(self, value, row=None, **kwargs):
        try:
            return super().clean(value, row=row, **kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                _("'%(value)s' is not a date (YYYY-MM-DD).") % {"value": value}
            ) from exc


class InvoiceResource(SafeResourceMixin, resources.ModelResource):
    customer = fields.Field(
        column_name="customer_email", attribute="customer", widget=CustomerByEmailWidget()
    )
    amount_due = fields.Field(
        column_name="amount_due", attribute="amount_due", widget=AmountWidget()
    )
    due_date = fields.Field(
        column_name="due_date", attribute="due_date", widget=DueDateWidget()
    )
    # The day it was paid (the templates' history); a file without the column leaves it.
    paid_on = fields.Field(column_name="paid_on", attribute="paid_on", widget=DueDateWidget())

    class Meta:
        model = Invoice
        import_id_fields = ["number"]
        fields = ["number", "customer", "amount_due", "currency", "due_date", "paid_on"]
        export_order = fields
        clean_model_instances = True

    def filter_export(self, queryset, **kwargs):
        return queryset.select_related("customer")

    def before_import_row(self, row, **kwargs):
        super().before_import_row(row, **kwargs)
        if isinstance(row.get("currency"), str):
            row["currency"] = row["currency"].strip().upper()

    def import_instance(self, instance, row, **kwargs):
        """An existing invoice keeps its customer: a row that names another customer for
        its number is a row error (a typo in a number must not move someone's debt)."""
        owner = instance.customer_id if instance.pk else None
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as exc:
            errors = exc.update_error_dict({})
        else:
            errors = {}
        if owner is not None and "customer" not in errors and instance.customer_id != owner:
            email = Customer.objects.filter(pk=owner).values_list("email", flat=True).first()
            errors["customer"] = [invoice_of_another_customer(
                instance.number, email or f"#{owner}", row.get("customer_email", ""))]
        if errors:
            raise ValidationError(errors)
