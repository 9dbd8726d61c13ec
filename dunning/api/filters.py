"""Filters, search and ordering of the case list: the admin case list's (the same query
functions, dunning.queries), as query parameters.

A value the parameter does not know is a 400 naming the parameter, never an empty list
that looks like "no such cases".
"""

from django.db.models import F
from django.utils.translation import gettext as _
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend

from .. import queries
from ..inputs import MAX_ID, id_error, parse_id
from ..models import Case

BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}

#: ?ordering= names -> the expression(s) they order by (a leading "-" reverses).
ORDERINGS = {
    "id": "pk",
    "opened_on": "opened_on",
    "opened_at": "opened_at",
    "updated_at": "updated_at",
    "last_step_on": "last_step_on",
    "next_due_on": "next_due_on",
    "amount": queries.AMOUNT,
    # More days overdue = an older oldest due date.
    "days_overdue": "-" + queries.OLDEST_DUE,
}
DEFAULT_ORDERING = ["-opened_at", "-pk"]
_NAME = " *-?(" + "|".join(ORDERINGS) + ") *"
#: What ?ordering= takes, for the schema: nothing, or names (each maybe with "-") and commas.
ORDERING_PATTERN = f"^$|^{_NAME}(,{_NAME})*$"


def _param(name, description, schema, enum=None):
    if enum is not None:
        schema = {**schema, "enum": list(enum)}
    return {"name": name, "required": False, "in": "query", "description": description,
            "schema": schema}


def _text(request, name):
    """The query parameter ``name`` ("" when absent); a 400 when it holds a NUL character
    (PostgreSQL refuses them in text, and no key or code holds one)."""
    raw = request.query_params.get(name) or ""
    if "\x00" in raw:
        raise ValidationError({name: [_("Null characters are not allowed.")]})
    return raw


def _given(request, name):
    """The query parameter ``name`` (None when absent); a 400 when it is given without a
    value (``?status=``): the schema types each parameter, and "" is none of its values, so
    it is refused rather than read as "no filter"."""
    raw = request.query_params.get(name)
    if raw == "":
        raise ValidationError({name: [_("Give a value or leave the parameter out.")]})
    return raw


def _boolean(request, name):
    raw = _given(request, name)
    if raw is None:
        return None
    try:
        return BOOLEANS[raw.strip().lower()]
    except KeyError:
        raise ValidationError({name: [_("Enter true or false.")]}) from None


def _choice(request, name, choices):
    raw = _given(request, name)
    if raw is None:
        return None
    if raw not in choices:
        raise ValidationError({name: [
            _("'%(value)s' is not one of: %(choices)s.")
            % {"value": raw, "choices": ", ".join(choices)}
        ]})
    return raw


class CaseFilterBackend(BaseFilterBackend):
    """The case list's filters (list only: a case asked for by id is found whatever the
    query string says)."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) != "list":
            return queryset
        params = request.query_params
        status = _choice(request, "status", Case.Status.values)
        if status:
            queryset = queryset.filter(status=status)
        for name in ("needs_person", "suspended"):
            value = _boolean(request, name)
            if value is not None:
                queryset = queryset.filter(**{name: value})
        policy, last_step = _text(request, "policy"), _text(request, "last_step")
        if policy:
            queryset = queryset.filter(policy__key=policy)
        if last_step:
            queryset = queryset.filter(last_step_key=last_step)
        assigned = _given(request, "assigned_to")
        if assigned is not None:
            if assigned == "me":
                queryset = queryset.filter(assigned_to=request.user)
            elif assigned == "none":
                queryset = queryset.filter(assigned_to__isnull=True)
            elif parse_id(assigned) is not None:
                queryset = queryset.filter(assigned_to_id=parse_id(assigned))
            else:
                raise ValidationError({"assigned_to": [
                    _("Enter a user id (a whole number up to %(max)s), 'me' or 'none'.")
                    % {"max": MAX_ID}]})
        band = _choice(request, "days_overdue", [b[0] for b in queries.DAYS_BANDS])
        if band:
            queryset = queries.filter_days_band(queryset, band)
        band = _choice(request, "amount", [b[0] for b in queries.AMOUNT_BANDS])
        if band:
            queryset = queries.filter_amount_band(queryset, band)
        currency = _text(request, "currency").strip()
        if currency:
            queryset = queries.filter_currency(queryset, currency)
        if _boolean(request, "broken_promise"):
            queryset = queries.broken_promises(queryset)
        term = params.get("search", "")
        if term.strip():
            queryset = queries.search_cases(queryset, term)
        return queryset.order_by(*self.ordering(request))

    @staticmethod
    def ordering(request):
        raw = request.query_params.get("ordering", "")
        if not raw:
            return DEFAULT_ORDERING
        result = []
        for part in raw.split(","):
            part = part.strip(" ")  # as ORDERING_PATTERN: spaces around a name, no other blank
            name = part.lstrip("-")
            if name not in ORDERINGS:
                raise ValidationError({"ordering": [
                    _("'%(value)s' is not one of: %(choices)s.")
                    % {"value": part, "choices": ", ".join(ORDERINGS)}
                ]})
            field = ORDERINGS[name]
            descending = part.startswith("-") != field.startswith("-")
            expression = F(field.lstrip("-"))
            result.append(expression.desc(nulls_last=True) if descending
                          else expression.asc(nulls_last=True))
        return [*result, "-pk"]

    def get_schema_operation_parameters(self, view):
        string, boolean = {"type": "string"}, {"type": "boolean"}
        return [
            _param("status", "Case status.", string, Case.Status.values),
            _param("needs_person", "Flagged 'needs a person'.", boolean),
            _param("suspended", "Service suspended.", boolean),
            _param("policy", "Policy key.", string),
            _param("last_step", "Key of the last step executed.", string),
            _param("assigned_to", "A user id, 'me' or 'none'.",
                   {"type": "string", "pattern": r"^(me|none|[0-9]+)$"}),
            _param("days_overdue", "Days-overdue band.", string,
                   [b[0] for b in queries.DAYS_BANDS]),
            _param("amount", "Amount-overdue band (in the case's currency).", string,
                   [b[0] for b in queries.AMOUNT_BANDS]),
            _param("currency", "Cases owing in this currency (ISO 4217 code).", string),
            _param("broken_promise", "Open cases whose promised date has passed.", boolean),
            _param("search", "Customer name or email, invoice number, or case number.",
                   string),
            _param("ordering", "Comma-separated: " + ", ".join(
                f"{name} / -{name}" for name in ORDERINGS) + ". Default: newest first.",
                   {"type": "string", "pattern": ORDERING_PATTERN}),
        ]


class FieldFilterBackend(BaseFilterBackend):
    """Exact filters named by the view's ``filter_fields`` ({param: (lookup, description)})."""

    def filter_queryset(self, request, queryset, view):
        if getattr(view, "action", None) != "list":
            return queryset
        for param, (lookup, _description) in view.filter_fields.items():
            value = _text(request, param)
            if lookup.endswith("_id"):
                _given(request, param)
            if value:
                if lookup.endswith("_id"):
                    value = parse_id(value)
                    if value is None:
                        raise ValidationError({param: [id_error()]})
                queryset = queryset.filter(**{lookup: value})
        return queryset

    def get_schema_operation_parameters(self, view):
        return [
            _param(param, description,
                   {"type": "integer", "minimum": 0, "maximum": MAX_ID}
                   if lookup.endswith("_id") else {"type": "string"})
            for param, (lookup, description) in view.filter_fields.items()
        ]
