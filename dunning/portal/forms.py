"""The forms of the self-service page (every field labelled, errors announced)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from ..conf import dunning_settings
from ..models import Feedback
from . import services


class DateInput(forms.DateInput):
    input_type = "date"


class PortalForm(forms.Form):
    """Field ids unique on the page (``<action>_<field>``); date fields offer the dates
    a customer may choose."""

    action = ""
    required_css_class = "required"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", f"{self.action}_%s")
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field.widget, DateInput):
                field.widget.attrs.update(
                    min=services.timezone.localdate().isoformat(),
                    max=services.latest_date().isoformat(),
                )


class PromiseForm(PortalForm):
    action = "promise"
    date = forms.DateField(label=_("I will pay by"), widget=DateInput)
    amount = forms.DecimalField(label=_("Amount"), max_digits=14, decimal_places=2,
                                min_value=0.01)

    def clean_date(self):
        return services.check_portal_date(self.cleaned_data["date"])


class PlanForm(PortalForm):
    action = "plan"
    instalments = forms.TypedChoiceField(label=_("Number of instalments"), coerce=int)
    first = forms.DateField(label=_("First instalment on"), widget=DateInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        highest = dunning_settings.PORTAL_PLAN_MAX_INSTALMENTS
        self.fields["instalments"].choices = [(n, str(n)) for n in range(2, highest + 1)]

    def clean_first(self):
        return services.check_portal_date(self.cleaned_data["first"])


class DisputeForm(PortalForm):
    action = "dispute"
    invoice = forms.CharField(label=_("Invoice"), max_length=255)
    reason = forms.CharField(label=_("What is wrong with this invoice?"), max_length=4000,
                             widget=forms.Textarea(attrs={"rows": 4}))


class FeedbackForm(PortalForm):
    action = "feedback"
    reason = forms.ChoiceField(label=_("Why was the payment late?"),
                               choices=Feedback.Reason.choices)
    text = forms.CharField(label=_("Anything else you want to tell us (optional)"),
                           required=False, max_length=4000,
                           widget=forms.Textarea(attrs={"rows": 3}))
