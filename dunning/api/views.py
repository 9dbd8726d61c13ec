"""The API's views (see docs/api.md for the endpoints, permissions and error shapes)."""

import logging

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.signals import got_request_exception
from django.db import IntegrityError
from django.http import JsonResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from drf_spectacular.utils import extend_schema as spectacular_extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from .. import queries
from ..conf import dunning_settings, imported
from ..engine import actions as services
from ..engine import actors, ondemand
from ..exceptions import DunningConfigurationError
from ..hosts import ANNOTATION_PREFIX, get_adapter, get_invoice_model
from ..inputs import MAX_DAY, MIN_DAY, parse_day, parse_id
from ..messages.variants import variant_report
from ..models import Case, MessageTemplate, Policy, Run, Step
from ..queries import reports
from . import serializers as s
from .filters import CaseFilterBackend, FieldFilterBackend
from .permissions import (
    CHANGE_CASE,
    SEND_BY_HAND,
    WRITE_OFF,
    ActionPermissions,
    EditPolicyOrReadOnly,
    IsStaff,
    can_view_cases,
    sees_assigned_only,
)
from .throttling import DunningScopedRateThrottle


class DunningAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, documenting the errors every endpoint may give:
    400 (DRF's {field: [messages]}), 401, 403, 404 ({"detail"}), and 429 on writes."""

    def _is_list_view(self, serializer=None):
        if getattr(self.view, "list_is_one_object", False) and self.view.action == "list":
            return False
        return super()._is_list_view(serializer)

    def get_override_parameters(self):
        """And the parameters the view builds when the schema is built
        (``schema_parameters()``: what depends on the host's models)."""
        extra = getattr(self.view, "schema_parameters", None)
        return [*super().get_override_parameters(), *(extra() if extra else [])]

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        error = self._get_response_for_code(s.ErrorSerializer, "403", direction=direction)
        responses.setdefault("400", {
            "description": "Bad input: DRF's {field: [messages]}.",
            "content": {"application/json": {"schema": {
                "type": "object", "additionalProperties": True}}},
        })
        for code, description in (("401", "Not logged in."), ("403", "Not permitted."),
                                  ("404", "Not found (or not yours to see).")):
            responses.setdefault(code, {**error, "description": description})
        if self.method not in SAFE_METHODS:
            responses.setdefault("415", {**error, "description": "The body is not JSON."})
            responses.setdefault("429", {**error, "description": "Throttled."})
        return responses


def extend_schema(**kwargs):
    """drf-spectacular's ``extend_schema`` on drf-spectacular's AutoSchema, whatever the
    site's ``REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`` is."""
    decorate = spectacular_extend_schema(**kwargs)

    def decorator(function):
        if getattr(function, "schema", None) is None and "schema" not in getattr(
            function, "kwargs", {}
        ):
            function.schema = DunningAutoSchema
        return decorate(function)

    return decorator


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The request conflicts with the state of the resource."
    default_code = "conflict"


class Unavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "unavailable"


def authentication_classes():
    """``DUNNING["API_AUTHENTICATION_CLASSES"]`` (dotted paths) or token (when
    ``rest_framework.authtoken`` is installed) and session authentication."""
    configured = dunning_settings.API_AUTHENTICATION_CLASSES
    if configured is not None:
        return [imported("API_AUTHENTICATION_CLASSES", path, index)
                for index, path in enumerate(configured)]
    classes = [SessionAuthentication]
    if apps.is_installed("rest_framework.authtoken"):
        from rest_framework.authentication import TokenAuthentication

        classes.insert(0, TokenAuthentication)
    return classes


class Pagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (a whole number from 1; more than
    ``API_MAX_PAGE_SIZE`` gets that many, as documented). A page size that is no whole
    number of at least 1 is a 400 naming it: DRF's paginator silently fell back to the
    default page size for ``?page_size=true``."""

    page_size_query_param = "page_size"

    def get_page_size(self, request):
        self.page_size = dunning_settings.API_PAGE_SIZE
        self.max_page_size = dunning_settings.API_MAX_PAGE_SIZE
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        value = parse_id(raw)
        if value is None or value < 1:
            raise ValidationError({self.page_size_query_param: [
                _("Enter a whole number of at least 1 (at most %(max)s are served).")
                % {"max": self.max_page_size}]})
        return min(value, self.max_page_size)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["maximum"] = 2**63 - 1
                parameter["description"] = (
                    "Results per page (default DUNNING['API_PAGE_SIZE']; a bigger number "
                    "than DUNNING['API_MAX_PAGE_SIZE'] gets that many).")
        return parameters


@csrf_exempt
def not_found(request, *args, **kwargs):
    """A path under the API that no route matches: a JSON 404, as the API's own 404s.
    CSRF-exempt as every view of the API (they authenticate each request; DRF's views are
    exempt): otherwise a POST to a path like ``cases/0.5/note/`` got Django's HTML 403
    page from the CSRF middleware instead of this 404."""
    return JsonResponse({"detail": str(NotFound.default_detail)}, status=404)


class DunningAPIMixin:
    """What every view of the API shares, whatever the site's REST_FRAMEWORK defaults."""

    def handle_exception(self, exc):
        """DRF answers its own exceptions (and Http404, PermissionDenied) as JSON; anything
        else would be Django's HTML 500 page. Outside DEBUG it is logged and reported as
        Django reports it (``django.request``, ``got_request_exception``), and answered
        ``{"detail": ...}`` with status 500."""
        try:
            return super().handle_exception(exc)
        except Exception:
            if settings.DEBUG:
                raise
            request = getattr(self.request, "_request", self.request)
            logging.getLogger("django.request").error(
                "Internal Server Error: %s", request.path, exc_info=True,
                extra={"status_code": 500, "request": request})
            got_request_exception.send(sender=type(self), request=request)
            return Response({"detail": _("A server error occurred.")},
                            status=status.HTTP_500_INTERNAL_SERVER_ERROR)

    schema = DunningAutoSchema()
    pagination_class = Pagination
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer]
    # JSON only, as documented: form and multipart bodies carry every value as text, so a
    # form's "0" passed for a boolean and "" for a number, which the schema (and a JSON
    # client) would call wrong. Another content type is a 415 ({"detail": ...}).
    parser_classes = [JSONParser]
    throttle_classes = [DunningScopedRateThrottle]
    throttle_scope = "dunning_write"

    def get_authenticators(self):
        return [auth() for auth in authentication_classes()]

    def get_throttles(self):
        if self.request.method in SAFE_METHODS:
            return []
        return super().get_throttles()


#: The years dunning.inputs.parse_day accepts (1900 to 9000), as a pattern on top of
#: ``format: date``: what the schema promises is what the view takes.
DAY_PATTERN = r"^(19[0-9]{2}|[2-8][0-9]{3}|9000)-[0-9]{2}-[0-9]{2}$"
assert (MIN_DAY.year, MAX_DAY.year, MAX_DAY.month, MAX_DAY.day) == (1900, 9000, 12, 31)


def day_param(name, description):
    return OpenApiParameter(name, {"type": "string", "format": "date", "pattern": DAY_PATTERN},
                            description=description)


def today_param():
    return day_param("as_of", (
        f"YYYY-MM-DD, {MIN_DAY.isoformat()} to {MAX_DAY.isoformat()} (default: today)."))


ERRORS = {
    400: OpenApiResponse(description="Bad input: DRF's {field: [messages]}."),
    401: OpenApiResponse(s.ErrorSerializer, description="Not logged in."),
    403: OpenApiResponse(s.ErrorSerializer, description="Not permitted."),
    404: OpenApiResponse(s.ErrorSerializer, description="Not found (or not yours to see)."),
    429: OpenApiResponse(s.ErrorSerializer, description="Throttled."),
}


def responses(ok, *codes, **more):
    result = {code: ERRORS[code] for code in (401, 403, *codes)}
    result.update(ok)
    for code, value in more.items():
        result[int(code.lstrip("_"))] = value
    return result


def case_action(input_serializer=None, description=""):
    """The schema of a case action: its input, the case after it, and its errors."""
    return extend_schema(
        request=input_serializer,
        responses=responses(
            {200: s.CaseDetailSerializer}, 400, 404, 429,
            _409=OpenApiResponse(s.RefusedSerializer,
                                 description="Refused: the case is not open, not paused, ..."),
        ),
        description=description,
    )


# -- cases ----------------------------------------------------------------------------------
class CaseViewSet(DunningAPIMixin, viewsets.ReadOnlyModelViewSet):
    """Cases: the workbench's list (filters, search, ordering), detail with open invoices
    and the timeline, and the workbench's actions with the admin's permissions."""

    permission_classes = [ActionPermissions]
    filter_backends = [CaseFilterBackend]
    serializer_class = s.CaseSerializer
    action_permissions = {
        "list": ["view"],
        "retrieve": ["view"],
        **{name: ["view", CHANGE_CASE] for name in (
            "assign", "note", "call", "pause", "resume", "escalate", "promise", "dispute",
            "resolve_disputes")},
        "write_off": ["view", WRITE_OFF],
        "send_now": ["view", SEND_BY_HAND],
    }

    def get_queryset(self):
        queryset = queries.annotate_owing(
            Case.objects.select_related("policy", "assigned_to")
        ).order_by("-opened_at", "-pk")
        user = self.request.user
        if user.is_authenticated and sees_assigned_only(user):
            queryset = queryset.filter(assigned_to=user)
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("disputes__opened_by", "charges")
        return queryset

    def get_serializer_class(self):
        if self.action == "retrieve":
            return s.CaseDetailSerializer
        return s.CaseSerializer

    # The filters are described by CaseFilterBackend.get_schema_operation_parameters.
    @extend_schema(responses=responses({200: s.CaseSerializer(many=True)}, 400))
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=responses({200: s.CaseDetailSerializer}, 404))
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    def _input(self, serializer_class):
        serializer = serializer_class(data=self.request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    def _done(self, case):
        """The case after an action (found whatever the collector may see now)."""
        fresh = queries.annotate_owing(
            Case.objects.select_related("policy", "assigned_to")
            .prefetch_related("disputes__opened_by", "charges")
        ).get(pk=case.pk)
        return Response(s.CaseDetailSerializer(fresh, context=self.get_serializer_context()).data)

    def _apply(self, operation, *args, **kwargs):
        case = self.get_object()
        try:
            operation(case, *args, actors.api(self.request.user), **kwargs)
        except services.CaseActionRefused as refused:
            raise Conflict(refused.message) from refused
        return self._done(case)

    @case_action(s.AssignInput, "Assign the case to a collector (an active staff user).")
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        data = self._input(s.AssignInput)
        return self._apply(services.assign, data["collector"])

    @case_action(s.NoteInput, "Add a note to the timeline.")
    @action(detail=True, methods=["post"])
    def note(self, request, pk=None):
        return self._apply(services.add_note, self._input(s.NoteInput)["text"])

    @case_action(s.CallInput, "Log a call and its outcome.")
    @action(detail=True, methods=["post"])
    def call(self, request, pk=None):
        data = self._input(s.CallInput)
        return self._apply(services.log_call, data["outcome"], data["text"],
                           inbound=data["inbound"])

    @case_action(s.PauseInput, "Pause dunning (until a date, or until resumed).")
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        data = self._input(s.PauseInput)
        return self._apply(services.pause, data["reason"], data["until"])

    @case_action(None, "Resume a paused case.")
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return self._apply(services.resume)

    @case_action(None, "Flag the case 'needs a person'.")
    @action(detail=True, methods=["post"])
    def escalate(self, request, pk=None):
        return self._apply(services.escalate)

    @case_action(s.PromiseInput, "Record a promise to pay: dunning pauses until "
                 f"{services.PROMISE_GRACE_DAYS} days after the promised date.")
    @action(detail=True, methods=["post"])
    def promise(self, request, pk=None):
        data = self._input(s.PromiseInput)
        return self._apply(services.record_promise, data["date"], data["amount"])

    @case_action(s.DisputeInput, "Open a dispute about one of the case's open invoices "
                 "(another number is a 400): that invoice is not demanded, listed or charged "
                 "until the dispute is resolved; the rest of the case is dunned as before. An open dispute goes to staff after "
                 "DUNNING['DISPUTE_ESCALATE_AFTER_DAYS'].")
    @action(detail=True, methods=["post"])
    def dispute(self, request, pk=None):
        data = self._input(s.DisputeInput)
        try:
            return self._apply(services.open_dispute, data["invoice_number"], data["reason"])
        except DjangoValidationError as exc:  # not one of the case's open invoices
            raise ValidationError({"invoice_number": exc.messages}) from exc

    @case_action(s.ResolveDisputesInput, "Resolve every open dispute of the case.")
    @action(detail=True, methods=["post"], url_path="resolve-disputes")
    def resolve_disputes(self, request, pk=None):
        data = self._input(s.ResolveDisputesInput)
        return self._apply(services.resolve_disputes, data["resolution"])

    @case_action(s.WriteOffInput, "Write the case off: closed for good, its invoices get no "
                 "further message. Needs dunning.write_off.")
    @action(detail=True, methods=["post"], url_path="write-off")
    def write_off(self, request, pk=None):
        data = self._input(s.WriteOffInput)
        case = self.get_object()
        try:
            written_off = services.write_off(case, data["reason"], actors.api(request.user))
        except services.CaseActionRefused as refused:
            raise Conflict(refused.message) from refused
        if not written_off:
            raise Conflict(services.CaseNotOpen(case).message)
        return self._done(case)

    @extend_schema(
        request=None,
        responses=responses(
            {200: s.SendNowSerializer}, 404, 429,
            _409=OpenApiResponse(s.RefusedSerializer, description=(
                "Refused; reason: not-open, done, today, paused or minimum.")),
        ),
        description="Send the policy's next step now, whatever the schedule says. Needs "
                    "dunning.send_by_hand.",
    )
    @action(detail=True, methods=["post"], url_path="send-now")
    def send_now(self, request, pk=None):
        case = self.get_object()
        if not case.is_open:
            return Response({"detail": services.CaseNotOpen(case).message,
                             "reason": "not-open"}, status=status.HTTP_409_CONFLICT)
        outcome = ondemand.send_now([case], actors.api(request.user))
        if case.pk in outcome.refused:
            return Response({"detail": outcome.refusal_message(case),
                             "reason": outcome.refused[case.pk]},
                            status=status.HTTP_409_CONFLICT)
        detail = self._done(case).data
        return Response({
            "sent": [{"step_key": sent.step.step_key, "status": sent.step.status,
                      "failure": sent.failure} for sent in outcome.sent],
            "resolved": bool(outcome.resolved),
            "case": detail,
        })


# -- policies, steps, templates -----------------------------------------------------------------
class PolicyWriteMixin:
    permission_classes = [EditPolicyOrReadOnly]
    filter_backends = [FieldFilterBackend]


class PolicyViewSet(PolicyWriteMixin, DunningAPIMixin, viewsets.ModelViewSet):
    """Policies with their steps. Read: staff; write: dunning.edit_policy."""

    serializer_class = s.PolicySerializer
    queryset = Policy.objects.prefetch_related("steps").order_by("key")
    filter_fields = {"key": ("key", "The policy's key.")}

    @extend_schema(responses=responses(
        {204: None}, 404, 429,
        _409=OpenApiResponse(s.ErrorSerializer, description="The policy is used by cases."),
    ))
    def destroy(self, request, *args, **kwargs):
        from ..admin.policy import in_use_message

        policy = self.get_object()
        count = policy.cases.count()
        if count:
            raise Conflict(in_use_message(policy, count))
        return super().destroy(request, *args, **kwargs)


class StepViewSet(PolicyWriteMixin, DunningAPIMixin, viewsets.ModelViewSet):
    """The steps of policies (checked as a whole sequence, as the admin does)."""

    serializer_class = s.StepSerializer
    queryset = Step.objects.select_related("policy").order_by("policy__key", "offset_days", "pk")
    filter_fields = {"policy": ("policy_id", "The policy's id.")}

    def perform_destroy(self, instance):
        s.check_sequence(instance.policy, remove=instance)
        instance.delete()


class MessageTemplateViewSet(PolicyWriteMixin, DunningAPIMixin, viewsets.ModelViewSet):
    """Message templates (validated in the sandbox, as the admin does)."""

    serializer_class = s.MessageTemplateSerializer
    queryset = MessageTemplate.objects.order_by("policy_id", "step_key", "channel", "language",
                                                "pk")
    filter_fields = {
        "policy": ("policy_id", "The policy's id."),
        "step_key": ("step_key", "The step key (or payment-received)."),
        "language": ("language", "The language code."),
    }


# -- invoices in ----------------------------------------------------------------------------------
class InvoiceViewSet(DunningAPIMixin, viewsets.GenericViewSet):
    """Invoices from an external billing system, on the shipped Invoice model."""

    permission_classes = [ActionPermissions]
    throttle_scope = "dunning_ingest"
    serializer_class = s.BulkInvoicesInput
    action_permissions = {"bulk": ["dunning.add_invoice", "dunning.change_invoice",
                                   "dunning.add_customer", "dunning.change_customer"]}

    @extend_schema(
        request=s.BulkInvoicesInput,
        responses=responses(
            {200: s.BulkInvoicesResultSerializer}, 429,
            _400=OpenApiResponse(s.BulkInvoicesErrorSerializer, description=(
                "Nothing was written. rows: each bad row with its index and errors.")),
            _404=OpenApiResponse(s.ErrorSerializer, description=(
                "The site's invoices are its own model (not dunning.Invoice).")),
            _409=OpenApiResponse(s.BulkInvoicesConflictSerializer, description=(
                "Nothing was written. rows: invoices whose number belongs to another "
                "customer (an invoice never moves to another customer); or, without "
                "rows, a concurrent request wrote the same invoice: send the batch "
                "again.")),
        ),
        description="Create or update invoices by number, with their customers (found by "
                    "email, or created). All or nothing; idempotent. An existing invoice "
                    "keeps its customer.",
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        from .ingest import BadRows, BulkInvoices, OtherCustomers

        if not BulkInvoices.available():
            raise NotFound(_("This site's invoices are its own model, not dunning.Invoice: "
                             "the bulk endpoint is only for the shipped models."))
        try:
            result = BulkInvoices(request.data).apply()
        except BadRows as bad:
            return Response({"rows": bad.rows}, status=status.HTTP_400_BAD_REQUEST)
        except OtherCustomers as moved:
            return Response({
                "detail": _("Some invoices belong to other customers; nothing was written."),
                "rows": moved.rows,
            }, status=status.HTTP_409_CONFLICT)
        except IntegrityError as exc:
            raise Conflict(_("Another request wrote the same invoices at the same time; "
                             "send the batch again.")) from exc
        return Response(result)


#: The run's stages per event: a payment resolves (only); a failed payment opens and
#: advances by the normal rules.
STAGES = {"invoice.paid": ("paid",), "payment.failed": ("open", "paid", "due")}


class PaymentEventViewSet(DunningAPIMixin, viewsets.GenericViewSet):
    """'invoice paid' / 'payment failed' events: the customer's dunning runs at once."""

    permission_classes = [ActionPermissions]
    throttle_scope = "dunning_ingest"
    serializer_class = s.PaymentEventInput
    action_permissions = {"create": [CHANGE_CASE]}

    @extend_schema(
        request=s.PaymentEventInput,
        responses=responses(
            {200: s.PaymentEventResultSerializer}, 400, 429,
            _404=OpenApiResponse(s.ErrorSerializer, description="No invoice with the number."),
            _503=OpenApiResponse(s.ErrorSerializer, description="Dunning is not configured."),
        ),
        description=(
            "invoice.paid: on the shipped Invoice model, the invoice's balance becomes "
            "amount_due (default 0); then, on any site, the customer's case is resolved "
            "now if nothing is overdue any more (thank-you message, signals); nothing "
            "else happens (no reminder). "
            "payment.failed: the customer's dunning runs now: a case is opened for an "
            "overdue invoice and a due step is sent, by the normal rules. An event id seen "
            "before is not applied again."),
    )
    def create(self, request):
        serializer = s.PaymentEventInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        event_id = data.get("id")
        if event_id:
            seen = Run.objects.filter(host=ondemand.PAYMENT_EVENT_RUN_HOST,
                                      summary__event__id=event_id).order_by("pk").first()
            if seen is not None and isinstance(seen.summary.get("response"), dict):
                return Response({**seen.summary["response"], "duplicate": True,
                                 "case": self._case(seen.summary["response"].get("customer"))})
        adapter = get_adapter()
        p = ANNOTATION_PREFIX
        found = list(
            adapter.annotated_invoices().filter(**{p + "number": data["invoice"]})
            .order_by().values_list("pk", adapter.customer_annotation)[:2]
        )
        if not found:
            raise NotFound(_("There is no invoice with the number '%(number)s'.")
                           % {"number": data["invoice"]})
        invoice_pk, customer_pk = found[0]
        if data["type"] == "invoice.paid":
            self._mark_paid(invoice_pk, data)
        try:
            run = ondemand.run_for_customers([customer_pk], stages=STAGES[data["type"]])
        except DunningConfigurationError as exc:
            raise Unavailable(str(exc)) from exc
        if data["type"] == "payment.failed":
            # Plan retries of the payment (dunning.payments; nothing without a backend).
            from ..payments.retries import record_failure

            record_failure(customer_pk, invoices=[data["invoice"]],
                           decline_code=data.get("decline_code", ""),
                           method_id=data.get("payment_method", ""))
        result = run.result
        response = {
            "id": event_id or None,
            "type": data["type"],
            "invoice": data["invoice"],
            "duplicate": False,
            "run": {"opened": result.opened, "executed": dict(result.executed),
                    "resolved": result.resolved, "terminated": result.terminated,
                    "sent": result.sent, "failed": result.failed},
        }
        if run.run is not None:
            stored = {**response, "customer": str(customer_pk)}
            Run.objects.filter(pk=run.run.pk).update(summary={
                **result.as_dict(),
                "event": {"id": event_id, "type": data["type"], "invoice": data["invoice"]},
                "response": stored,
            })
        return Response({**response, "case": self._case(customer_pk)})

    def _mark_paid(self, invoice_pk, data):
        from ..models import Invoice

        if get_invoice_model() is not Invoice:
            if "amount_due" in data:
                raise ValidationError({"amount_due": [_(
                    "This site's invoices are its own model: record the payment there; "
                    "leave amount_due out.")]})
            return
        if not self.request.user.has_perm("dunning.change_invoice"):
            raise PermissionDenied()
        from django.db.models import Value
        from django.db.models.functions import Coalesce

        amount = data.get("amount_due", 0)
        # paid_on (dunning.history): the day it became paid, kept when it was paid before;
        # none while something is still owed.
        paid_on = Coalesce("paid_on", Value(timezone.localdate())) if amount <= 0 else None
        Invoice.objects.filter(pk=invoice_pk).update(amount_due=amount, paid_on=paid_on)

    def _case(self, customer_pk):
        """The customer's latest case, if the user may see it."""
        if customer_pk is None:
            return None
        user = self.request.user
        cases = Case.objects.filter(customer_id=customer_pk)
        if not can_view_cases(user):
            return None
        if sees_assigned_only(user):
            cases = cases.filter(assigned_to=user)
        case = cases.order_by("-opened_at", "-pk").first()
        if case is None:
            return None
        return {"id": case.pk, "status": case.status, "last_step_key": case.last_step_key}


# -- reports ----------------------------------------------------------------------------------
def _day_param(request, name):
    """The query parameter ``name`` as a date (None when absent); a 400 naming it when it
    is no date or lies outside the years the reports can count in (dunning.inputs)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        return parse_day(raw)
    except ValueError as exc:
        raise ValidationError({name: [str(exc)]}) from None


def _as_of(request):
    return _day_param(request, "as_of") or timezone.localdate()


def recovery_rows(today):
    recovery = reports.recovery(today)
    recovered = reports.recovered_amounts(today)
    return [{**recovery[days], "recovered": recovered.get(days, [])} for days in recovery]


class ReportViewSet(DunningAPIMixin, viewsets.GenericViewSet):
    """The dashboard's figures as JSON (dunning.reports); ?as_of=YYYY-MM-DD."""

    permission_classes = [ActionPermissions]
    action_permissions = {name: ["view"] for name in (
        "list", "aging", "recovery", "days_to_collect", "steps", "variants")}
    pagination_class = None
    serializer_class = s.ReportsSerializer
    list_is_one_object = True  # GET /reports/ is one object of figures, not a list

    @extend_schema(parameters=[today_param()],
                   responses=responses({200: s.ReportsSerializer}, 400))
    def list(self, request):
        today = _as_of(request)
        figures = reports.dashboard(today)
        figures["recovery"] = [
            {**figures["recovery"][days], "recovered": figures["recovered"].get(days, [])}
            for days in figures["recovery"]
        ]
        return Response(s.ReportsSerializer(figures).data)

    @extend_schema(parameters=[today_param()],
                   responses=responses({200: s.AgingBucketSerializer(many=True)}, 400))
    @action(detail=False)
    def aging(self, request):
        return Response(s.AgingBucketSerializer(reports.aging(_as_of(request)), many=True).data)

    @extend_schema(parameters=[today_param()],
                   responses=responses({200: s.RecoverySerializer(many=True)}, 400))
    @action(detail=False)
    def recovery(self, request):
        return Response(s.RecoverySerializer(recovery_rows(_as_of(request)), many=True).data)

    @extend_schema(responses=responses({200: s.DaysToCollectSerializer}))
    @action(detail=False, url_path="days-to-collect")
    def days_to_collect(self, request):
        return Response(s.DaysToCollectSerializer(reports.average_days_to_collect()).data)

    @extend_schema(responses=responses({200: s.StepEffectivenessSerializer(many=True)}))
    @action(detail=False)
    def steps(self, request):
        return Response(s.StepEffectivenessSerializer(reports.step_effectiveness(),
                                                      many=True).data)

    @extend_schema(parameters=[day_param(
                       "since", "YYYY-MM-DD: only messages sent on this day "
                       f"or later (default: all); {MIN_DAY.isoformat()} to "
                       f"{MAX_DAY.isoformat()}.")],
                   responses=responses({200: s.VariantReportSerializer(many=True)}, 400))
    @action(detail=False)
    def variants(self, request):
        """A/B variants of steps: sent, recovered, rate, 95 % interval, p-value."""
        since = _day_param(request, "since")
        return Response(s.VariantReportSerializer(variant_report(since), many=True).data)


# -- the schema and its docs page ----------------------------------------------------------------
SCHEMA_SETTINGS = {
    "TITLE": "django-dunning API",
    "DESCRIPTION": "Cases, policies, invoices in, payment events and reports of "
                   "django-dunning. See docs/api.md.",
    "VERSION": "1",
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["dunning.api.schema.only_dunning_endpoints"],
    "ENUM_NAME_OVERRIDES": {
        "CaseStatusEnum": Case.Status.choices,
    },
}


class SchemaView(SpectacularAPIView):
    """The OpenAPI 3 schema of this API (staff only)."""

    permission_classes = [IsStaff]
    custom_settings = SCHEMA_SETTINGS

    def get_authenticators(self):
        return [auth() for auth in authentication_classes()]


class DocsView(SpectacularSwaggerView):
    """Swagger UI, its assets served from drf-spectacular-sidecar (no CDN)."""

    permission_classes = [IsStaff]
    url_name = "dunning:api-schema"
    title = "django-dunning API"

    def get_authenticators(self):
        return [auth() for auth in authentication_classes()]

    def _get_schema_auth_names(self):
        from drf_spectacular.extensions import OpenApiAuthenticationExtension

        found = [OpenApiAuthenticationExtension.get_match(k) for k in authentication_classes()]
        return [auth.name for auth in found if auth]

    @staticmethod
    def _swagger_ui_resource(filename):
        from drf_spectacular.views import _get_sidecar_url

        return _get_sidecar_url(f"swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon():
        from drf_spectacular.views import _get_sidecar_url

        return _get_sidecar_url("swagger-ui-dist/favicon-32x32.png")

