"""In-app notices in the API (docs/inapp.md): for a host's own backend that shows them
in a single-page or mobile app.

* ``GET notices/?customer=<pk>``: the customer's active notices, newest first
  (``dunning.view_notice``);
* ``POST notices/{id}/seen/`` and ``POST notices/{id}/dismiss/``: record that the
  customer saw or dismissed it (``dunning.change_notice``); the first time counts, a
  second call changes nothing.

With ``API_COLLECTORS_SEE_ASSIGNED_ONLY``, a collector sees the notices of customers
whose cases are assigned to them only.
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from ..models import Case, Notice
from ..models.notices import parse_customer_pk
from .permissions import ActionPermissions, sees_assigned_only
from .views import DunningAPIMixin, extend_schema, responses

VIEW_NOTICE = "dunning.view_notice"
CHANGE_NOTICE = "dunning.change_notice"


class NoticeSerializer(serializers.ModelSerializer):
    customer = serializers.CharField(
        source="customer_id", read_only=True, help_text=gettext_lazy("The customer's pk, as a string.")
    )
    case = serializers.IntegerField(source="case_id", read_only=True, allow_null=True)
    role = serializers.CharField(
        read_only=True,
        help_text=gettext_lazy("The ARIA role of its banner: alert (danger) or status."),
    )
    active = serializers.SerializerMethodField()

    class Meta:
        model = Notice
        fields = ["id", "customer", "case", "step_key", "level", "role", "title", "text",
                  "action_label", "action_url", "created_at", "expires_at", "seen_at",
                  "dismissed_at", "resolved_at", "active"]
        read_only_fields = fields

    def get_active(self, notice) -> bool:
        return notice.is_active()


def customer_pk_schema():
    """The JSON schema of the site's customer pk: an integer for integer keys, a UUID for
    UUID keys, else a non-empty string (read when the schema is built, never at import:
    the customer model is the host's)."""
    from django.db import models

    from ..hosts import get_customer_model

    field = get_customer_model()._meta.pk
    field = getattr(field, "target_field", field)  # a pk that is a one-to-one link
    if isinstance(field, models.IntegerField):  # AutoField and BigAutoField too
        return {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
    if isinstance(field, models.UUIDField):
        return {"type": "string", "format": "uuid"}
    schema = {"type": "string", "minLength": 1}
    if field.max_length:
        schema["maxLength"] = field.max_length
    return schema


class NoticeViewSet(DunningAPIMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """A customer's active in-app notices; mark one seen or dismissed."""

    permission_classes = [ActionPermissions]
    serializer_class = NoticeSerializer
    lookup_value_regex = r"[0-9]+"
    action_permissions = {
        "list": [VIEW_NOTICE],
        "seen": [CHANGE_NOTICE],
        "dismiss": [CHANGE_NOTICE],
    }

    def schema_parameters(self):
        """The list's required ``customer``, typed as the site's customer pk (read when
        the schema is built: the customer model is the host's)."""
        if self.action != "list":
            return []
        return [OpenApiParameter("customer", customer_pk_schema(), required=True,
                                 description="The customer's pk (required).")]

    def get_queryset(self):
        queryset = Notice.objects.all()
        user = self.request.user
        if user.is_authenticated and sees_assigned_only(user):
            queryset = queryset.filter(customer_id__in=Case.objects.filter(assigned_to=user)
                                       .values("customer_id"))
        if self.action == "list":
            queryset = queryset.filter(pk__in=Notice.objects.active_for(self._customer())
                                       .values("pk"))
        return queryset.order_by("-created_at", "-pk")

    def _customer(self):
        raw = self.request.query_params.get("customer", "").strip()
        if not raw:
            raise ValidationError({"customer": [_("This parameter is required.")]})
        try:
            return parse_customer_pk(raw)
        except DjangoValidationError:
            raise ValidationError({"customer": [
                _("'%(value)s' is not a customer id.") % {"value": raw[:100]}]}) from None

    @extend_schema(responses=responses({200: NoticeSerializer(many=True)}, 400))
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def _stamp(self, field):
        notice = self.get_object()
        if getattr(notice, field) is None:
            Notice.objects.filter(pk=notice.pk, **{f"{field}__isnull": True}).update(
                **{field: timezone.now()})
            notice.refresh_from_db()
        return Response(NoticeSerializer(notice, context=self.get_serializer_context()).data)

    @extend_schema(request=None, responses=responses({200: NoticeSerializer}, 404, 429),
                   description="Record that the customer saw the notice (the first time "
                               "counts). Needs dunning.change_notice.")
    @action(detail=True, methods=["post"])
    def seen(self, request, pk=None):
        return self._stamp("seen_at")

    @extend_schema(request=None, responses=responses({200: NoticeSerializer}, 404, 429),
                   description="Dismiss the notice: it is no longer active (the first "
                               "time counts). Needs dunning.change_notice.")
    @action(detail=True, methods=["post"])
    def dismiss(self, request, pk=None):
        return self._stamp("dismissed_at")
