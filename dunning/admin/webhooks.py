"""Admin of the outbound webhooks (docs/webhooks.md).

* **Webhook endpoints**: URL, description, active, the event types it gets (none chosen:
  all). The signing secret is generated when the endpoint is created and shown read-only
  from then on; the action "Rotate the signing secret" replaces it (give the new one to
  the receiver: deliveries are signed with the secret of the moment they are posted).
* **Webhook deliveries** (read-only): one row per event and endpoint, filterable by status,
  event type and endpoint; the action "Retry now" posts pending and failed ones at once.
"""

import json

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from .. import webhooks
from ..models import WebhookDelivery, WebhookEndpoint
from ..models.webhooks import generate_secret
from .readonly import ReadOnlyAdminMixin

#: Deliveries "Retry now" posts while the page waits; the rest go with the next drain.
RETRY_INLINE = 25


class EndpointForm(forms.ModelForm):
    url = forms.URLField(
        label=gettext_lazy("URL"), max_length=2000, assume_scheme="https",
        help_text=gettext_lazy("Every event is POSTed here as JSON."),
    )
    event_types = forms.MultipleChoiceField(
        label=gettext_lazy("event types"), required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=gettext_lazy("The event types posted to this URL; none chosen: all of them."),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["url", "description", "is_active", "event_types"]

        @staticmethod
        def formfield_callback(field, **kwargs):
            # Django 6 assumes https for a URL typed without a scheme; say so now.
            if isinstance(field, models.URLField):
                kwargs.setdefault("assume_scheme", "https")
            return field.formfield(**kwargs)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        every = ["case.*", "step.*"]  # every type with that prefix, also future ones
        self.fields["event_types"].choices = [(t, t) for t in every + webhooks.event_types()]

    def clean_event_types(self):
        return list(self.cleaned_data.get("event_types") or [])


@admin.action(description=gettext_lazy("Rotate the signing secret"), permissions=["change"])
def rotate_secret(modeladmin, request, queryset):
    count = 0
    for endpoint in queryset:
        endpoint.secret = generate_secret()
        endpoint.save(update_fields=["secret"])
        count += 1
    modeladmin.message_user(request, ngettext(
        "New signing secret for %(count)d endpoint: give it to its receiver.",
        "New signing secrets for %(count)d endpoints: give them to their receivers.",
        count,
    ) % {"count": count}, messages.SUCCESS)


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ["url", "description", "is_active", "events", "disabled_reason",
                    "created_at"]
    list_filter = ["is_active"]
    search_fields = ["url", "description"]
    actions = [rotate_secret]

    def get_fields(self, request, obj=None):
        fields = ["url", "description", "is_active", "event_types"]
        if obj is not None:
            fields += ["secret", "disabled_reason", "created_at"]
        return fields

    def get_readonly_fields(self, request, obj=None):
        return ["secret", "disabled_reason", "created_at"] if obj is not None else []

    @admin.display(description=gettext_lazy("event types"))
    def events(self, endpoint):
        return ", ".join(endpoint.event_types) if endpoint.event_types else _("all")

    def save_model(self, request, obj, form, change):
        if obj.is_active:
            obj.disabled_reason = ""  # switched on again by a person
        super().save_model(request, obj, form, change)


@admin.action(description=gettext_lazy("Retry now"), permissions=["retry"])
def retry_now(modeladmin, request, queryset):
    chosen = list(queryset)
    changed = webhooks.retry_now(chosen)
    left_alone = len(chosen) - changed
    if left_alone:
        modeladmin.message_user(request, ngettext(
            "%(count)d delivery left alone: it is delivered or being posted.",
            "%(count)d deliveries left alone: they are delivered or being posted.",
            left_alone,
        ) % {"count": left_alone}, messages.WARNING)
    if not changed:
        return
    pks = [d.pk for d in chosen]
    result = webhooks.deliver_due(limit=RETRY_INLINE, only=pks)
    modeladmin.message_user(request, _(
        "Retried: %(delivered)d delivered, %(retrying)d to be retried later, "
        "%(failed)d failed."
    ) % {"delivered": result.delivered, "retrying": result.retrying,
         "failed": result.failed}, messages.SUCCESS if not (result.retrying or result.failed)
        else messages.WARNING)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts",
                    "last_response_code", "next_attempt_at", "delivered_at"]
    list_filter = ["status", "event_type", "endpoint"]
    search_fields = ["event_id"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created_at"
    actions = [retry_now]
    fields = ["endpoint", "event_type", "event_id", "status", "attempts", "next_attempt_at",
              "last_response_code", "last_error", "created_at", "delivered_at",
              "payload_json"]
    readonly_fields = fields

    def has_retry_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.change_webhookdelivery")

    @admin.display(description=gettext_lazy("payload"))
    def payload_json(self, delivery):
        return format_html("<pre>{}</pre>", json.dumps(delivery.payload, indent=2,
                                                        sort_keys=True))
