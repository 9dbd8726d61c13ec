"""Admin of in-app notices (docs/inapp.md): read-only, filtered by level and state,
searched by customer (name or email through the field mapping, or the customer's id)."""

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from ..hosts import customer_contains, get_adapter
from ..models import Notice
from ..models.notices import parse_customer_pk
from .readonly import ReadOnlyAdminMixin


class StateFilter(admin.SimpleListFilter):
    title = gettext_lazy("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [
            ("active", gettext_lazy("Active")),
            ("dismissed", gettext_lazy("Dismissed")),
            ("resolved", gettext_lazy("Resolved")),
            ("expired", gettext_lazy("Expired")),
        ]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "active":
            return queryset.active()
        if value == "dismissed":
            return queryset.filter(dismissed_at__isnull=False)
        if value == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        if value == "expired":
            return queryset.filter(expires_at__lte=timezone.now())
        return queryset


@admin.register(Notice)
class NoticeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "customer", "level", "title", "step_key", "state",
                    "seen_at", "case"]
    list_filter = ["level", StateFilter, "step_key"]
    list_select_related = ["customer", "case"]
    # Searched by get_search_results; the admin shows its search box when this is set.
    search_fields = ["pk"]
    search_help_text = gettext_lazy("Customer name or email, or the customer's id.")
    date_hierarchy = "created_at"
    fields = ["customer", "case", "step_key", "level", "title", "text", "action_label",
              "action_url", "created_at", "expires_at", "seen_at", "dismissed_at",
              "resolved_at"]
    readonly_fields = fields

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        adapter = get_adapter()
        q = Q()
        for name in ("name", "email"):
            match = customer_contains(adapter, name, term)
            if match is not None:
                q |= match
        try:
            q |= Q(customer_id=parse_customer_pk(term))
        except ValidationError:
            pass  # not a customer id
        if not q:
            return queryset.none(), False
        return queryset.filter(q), False

    @admin.display(description=gettext_lazy("state"))
    def state(self, notice):
        if notice.resolved_at:
            return gettext_lazy("Resolved")
        if notice.dismissed_at:
            return gettext_lazy("Dismissed")
        if not notice.is_active():
            return gettext_lazy("Expired")
        return gettext_lazy("Active")
