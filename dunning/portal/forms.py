"""The forms of the self-service page (every field labelled, errors announced)."""

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from ..conf import dunning_settings
from ..inputs import MAX_CUSTOMER_TEXT_LENGTH
from ..models import Feedback
from . import services

CENT = Decimal("0.01")


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
                                widget=forms.NumberInput(attrs={"min": "0.01", "step": "0.01"}))

    def clean_date(self):
        return services.check_portal_date(self.cleaned_data["date"])

    def clean_amount(self):
        """At least one cent, said in the customer's language ("0,01" in German; Django's
        own message would show "0.01" whatever the language)."""
        from babel.numbers import format_decimal

        amount = self.cleaned_data["amount"]
        if amount < CENT:
            raise forms.ValidationError(
                _("Please enter an amount of at least %(amount)s.")
                % {"amount": format_decimal(CENT, format="#,##0.00", locale=services.page_locale())}
            )
        return amount


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
    reason = forms.CharField(label=_("What is wrong with this invoice?"),
                             max_length=MAX_CUSTOMER_TEXT_LENGTH,
                             widget=forms.Textarea(attrs={"rows": 4}))


class FeedbackForm(PortalForm):
    action = "feedback"
    reason = forms.ChoiceField(label=_("Why was the payment late?"),
                               choices=Feedback.Reason.choices)
    text = forms.CharField(label=_("Anything else you want to tell us (optional)"),
                           required=False, max_length=MAX_CUSTOMER_TEXT_LENGTH,
                           widget=forms.Textarea(attrs={"rows": 3}))


class ChannelsForm(PortalForm):
    """One checkbox per channel the page offers (DUNNING["PORTAL_CHANNELS"])."""

    action = "channels"
    LABELS = {
        "email": _("Send me reminders by email"),
        "sms": _("Send me reminders by text message"),
        "letter": _("Send me reminders by letter"),
        "in_app": _("Show me reminders when I sign in"),
        "call": _("Call me about overdue invoices"),
    }

    def __init__(self, *args, channels=(), **kwargs):
        super().__init__(*args, **kwargs)
        for channel in channels:
            label = self.LABELS.get(channel) or _("Send me reminders by %(channel)s") % {
                "channel": services.channel_label(channel)}
            self.fields[channel] = forms.BooleanField(label=label, required=False)

    def wanted(self):
        return {name for name, on in self.cleaned_data.items() if on}


class UpdaterForm(PortalForm):
    action = "updater"
    answer = forms.ChoiceField(
        label=_("May the card networks send us your new card details automatically?"),
        choices=[("yes", _("Yes, keep my card details up to date")),
                 ("no", _("No, I will update them myself"))],
        widget=forms.RadioSelect,
    )


class PayForm(PortalForm):
    """Pay the overdue balance now with one of the customer's stored methods."""

    action = "pay"

    def __init__(self, *args, methods=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["method"] = forms.ChoiceField(
            label=_("Pay with"), widget=forms.RadioSelect,
            choices=[(m.id, m.label or m.id) for m in methods],
            initial=methods[0].id if methods else None,
        )
