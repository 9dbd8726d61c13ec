"""Admin of policies, their steps and message templates."""

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import path, reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export.admin import ImportExportMixin
from import_export.formats.base_formats import CSV, JSON, XLSX

from ..models import MessageTemplate, Policy, Step
from ..models.policy import validate_step_sequence
from ..shipped import shipped_message
from .preview import preview_view
from .resources import MessageTemplateResource, PolicyResource


class StepFormSet(BaseInlineFormSet):
    """Checks the steps of a policy as a whole (see validate_step_sequence)."""

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        steps = []
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE") or not data.get("key"):
                continue
            steps.append((data["key"], data.get("offset_days"), data.get("action") or ""))
        validate_step_sequence(steps)

    def validate_unique(self):
        # validate_step_sequence reports duplicate keys and offsets in plain words.
        pass


class StepInline(admin.TabularInline):
    model = Step
    formset = StepFormSet
    extra = 0
    fields = ["key", "offset_days", "channel", "action"]
    ordering = ["offset_days"]


def in_use_message(policy, count):
    if count == 1:
        text = _("The policy '%(name)s' is used by 1 case and cannot be deleted; deactivate "
                 "it instead.")
    else:
        text = _("The policy '%(name)s' is used by %(count)d cases and cannot be deleted; "
                 "deactivate it instead.")
    return text % {"name": policy.name, "count": count}


@admin.action(permissions=["delete"], description=gettext_lazy("Delete selected policies"))
def delete_selected(modeladmin, request, queryset):
    """Django's bulk delete, refusing when a selected policy is in use."""
    in_use = modeladmin.policies_in_use(queryset)
    if in_use:
        for policy in in_use:
            modeladmin.message_user(request, in_use_message(policy, policy.case_count),
                                    messages.ERROR)
        return None
    return django_delete_selected(modeladmin, request, queryset)


@admin.register(Policy)
class PolicyAdmin(ImportExportMixin, admin.ModelAdmin):
    # Steps and templates travel with their policy (JSON columns of PolicyResource).
    resource_classes = [PolicyResource]
    # No XLSX: the templates column of a policy outgrows a spreadsheet cell (32,767
    # characters); templates alone travel as XLSX through MessageTemplateAdmin.
    import_formats = [CSV, JSON]
    export_formats = [CSV, JSON]
    list_display = ["name", "key", "is_active", "min_gap_days", "grace_days"]
    list_filter = ["is_active"]
    search_fields = ["name", "key"]
    fields = ["key", "name", "description", "is_active", "min_gap_days", "grace_days",
              "minimum_balance"]
    inlines = [StepInline]
    actions = [delete_selected]

    def get_actions(self, request):
        actions = super().get_actions(request)
        # Ours replaces Django's site-wide action of the same name.
        if "delete_selected" in actions and self.has_delete_permission(request):
            actions["delete_selected"] = (
                delete_selected, "delete_selected", delete_selected.short_description
            )
        return actions

    @staticmethod
    def policies_in_use(queryset):
        return list(
            queryset.annotate(case_count=Count("cases")).filter(case_count__gt=0).order_by("key")
        )

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.cases.exists():
            return False
        return super().has_delete_permission(request, obj)

    def delete_view(self, request, object_id, extra_context=None):
        obj = self.get_object(request, object_id)
        if obj is not None and super().has_delete_permission(request, obj):
            count = obj.cases.count()
            if count:
                self.message_user(request, in_use_message(obj, count), messages.ERROR)
                return HttpResponseRedirect(
                    reverse("admin:dunning_policy_change", args=[obj.pk],
                            current_app=self.admin_site.name)
                )
        return super().delete_view(request, object_id, extra_context)

    def delete_queryset(self, request, queryset):
        in_use = self.policies_in_use(queryset)
        for policy in in_use:
            self.message_user(request, in_use_message(policy, policy.case_count), messages.ERROR)
        queryset.filter(~Q(pk__in=[p.pk for p in in_use])).delete()


@admin.register(MessageTemplate)
class MessageTemplateAdmin(ImportExportMixin, admin.ModelAdmin):
    resource_classes = [MessageTemplateResource]
    import_formats = [CSV, XLSX, JSON]
    export_formats = [CSV, XLSX, JSON]
    list_display = ["step_key", "language", "channel", "policy", "subject", "updated_at"]
    list_filter = ["policy", "channel", "language", "step_key"]
    search_fields = ["subject", "step_key"]
    actions = ["reset_to_shipped"]
    # Adds a "Preview" link to the object tools of the change form.
    change_form_template = "dunning/admin/preview_change_form.html"

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "<path:object_id>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name=f"{opts.app_label}_{opts.model_name}_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request, object_id):
        return preview_view(self, request, object_id)

    @admin.action(permissions=["change"], description=gettext_lazy("Reset to the shipped text"))
    def reset_to_shipped(self, request, queryset):
        for template in queryset.order_by("policy", "step_key", "language"):
            shipped = shipped_message(template.language.lower(), template.step_key)
            if shipped is None:
                self.message_user(
                    request,
                    _("%(template)s: there is no shipped text for this step and language; "
                      "left unchanged.") % {"template": template},
                    messages.WARNING,
                )
                continue
            template.subject, template.text_body, template.html_body = shipped
            template.save(update_fields=["subject", "text_body", "html_body", "updated_at"])
            self.message_user(
                request,
                _("%(template)s: reset to the shipped text.") % {"template": template},
                messages.SUCCESS,
            )


__all__ = ["MessageTemplateAdmin", "PolicyAdmin", "StepInline"]
