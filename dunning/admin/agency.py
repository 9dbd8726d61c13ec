"""Admin of the cases at collections agencies (dunning.agency, docs/agency.md).

The page "Cases at collections agencies" lists the cases handed over to an agency (its
reference, its last reported status, the day of the hand-over) with

* the action **Export for the agency**: the selected cases of one agency as a file in the
  agency's format (CSV or JSON), the same rows as ``manage.py dunning agency-export``;
* **Import** (top right): the agency's status updates, for the agency chosen in the form,
  previewed first and then imported all or nothing, as ``manage.py dunning agency-import``.

Viewing and exporting needs the permission to view cases; importing also needs to change
cases and to write them off (an update "uncollectable" writes the case off).
"""

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from import_export.admin import ImportMixin
from import_export.formats.base_formats import CSV, JSON
from import_export.forms import ConfirmImportForm, ImportForm

from .. import agency as agencies
from ..conf import agency_settings, dunning_settings
from ..exceptions import DunningConfigurationError
from ..models import Case
from ..models.case import AgencyCase


def agency_choices():
    """(key, name) of the agencies set up in DUNNING["AGENCIES"]."""
    choices = []
    for key in dunning_settings.AGENCIES or {}:
        try:
            choices.append((key, agency_settings(key)[1]["name"]))
        except DunningConfigurationError:
            continue
    return choices


class AgencyImportForm(ImportForm):
    agency = forms.ChoiceField(label=gettext_lazy("Collections agency"), choices=())

    field_order = ["agency", "resource", "import_file", "format"]

    def __init__(self, formats, resources, **kwargs):
        super().__init__(formats, resources, **kwargs)
        self.fields["agency"].choices = agency_choices()


class AgencyConfirmImportForm(ConfirmImportForm):
    agency = forms.CharField(widget=forms.HiddenInput())

    def clean_agency(self):
        key = self.cleaned_data["agency"]
        if key not in dict(agency_choices()):
            raise forms.ValidationError(_("There is no such collections agency."))
        return key


@admin.action(permissions=["view"], description=gettext_lazy("Export for the agency"))
def export_for_agency(modeladmin, request, queryset):
    """The selected cases that are at an agency, as the agency's file (one agency at a
    time)."""
    handed = queryset.exclude(agency="")
    keys = sorted(set(handed.values_list("agency", flat=True)))
    if not keys:
        modeladmin.message_user(
            request, _("None of the selected cases is at a collections agency."),
            messages.WARNING)
        return None
    if len(keys) > 1:
        modeladmin.message_user(
            request, _("The selected cases are at several agencies (%(agencies)s): select "
                       "the cases of one agency.") % {"agencies": ", ".join(keys)},
            messages.ERROR)
        return None
    try:
        export = agencies.export_cases(keys[0], queryset=Case.objects.filter(
            pk__in=handed.values("pk")))
    except DunningConfigurationError as exc:
        modeladmin.message_user(request, str(exc), messages.ERROR)
        return None
    response = HttpResponse(export.content, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response


@admin.register(AgencyCase)
class AgencyCaseAdmin(ImportMixin, admin.ModelAdmin):
    list_display = ["case_link", "customer", "agency_name", "agency_reference",
                    "agency_status", "collected_by_agency", "handed_over_on", "status"]
    list_filter = ["agency", "agency_status", "status"]
    list_select_related = ["customer"]
    search_fields = ["=id", "agency_reference"]
    date_hierarchy = "handed_over_on"
    actions = [export_for_agency]
    resource_classes = [agencies.AgencyUpdateResource]
    import_formats = [CSV, JSON]
    import_form_class = AgencyImportForm
    confirm_form_class = AgencyConfirmImportForm

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(agency="")

    @admin.display(description=gettext_lazy("case"), ordering="pk")
    def case_link(self, case):
        url = reverse("admin:dunning_case_change", args=[case.pk],
                      current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a>', url, case.pk)

    @admin.display(description=gettext_lazy("collections agency"), ordering="agency")
    def agency_name(self, case):
        return dict(agency_choices()).get(case.agency, case.agency)

    # -- permissions: those of cases ----------------------------------------------------
    def _case_perm(self, request, action):
        return request.user.has_perm(f"dunning.{action}_case")

    def has_view_permission(self, request, obj=None):
        return self._case_perm(request, "view") or self._case_perm(request, "change")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_import_permission(self, request):
        return self._case_perm(request, "change") and request.user.has_perm("dunning.write_off")

    # -- the import: which agency's report ------------------------------------------------
    def get_import_resource_kwargs(self, request, **kwargs):
        form = kwargs.get("form")
        data = getattr(form, "cleaned_data", None) or {}
        return {"agency": data.get("agency")}

    def get_confirm_form_initial(self, request, import_form):
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["agency"] = import_form.cleaned_data["agency"]
        return initial
