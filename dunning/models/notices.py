"""In-app notices: the banner "your payment failed, update your card" inside the host's
site (docs/inapp.md).

The in-app channel (dunning.channels.inapp) writes one :class:`Notice` per message; the
host shows the customer's newest active one with the ``dunning_notice_banner`` template
tag, or reads them through the API (``api/v1/notices/``) or
``Notice.objects.active_for(customer)``. A notice is active until the customer dismisses
it, it expires, or it is resolved: when the case is resolved (the customer paid), every
notice of the case disappears by itself.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..conf import customer_model_label
from .case import Case
from .policy import PAYMENT_RECEIVED


def _customer_pk(customer_or_pk):
    """The pk of a customer instance, or the value itself (a pk)."""
    if customer_or_pk is None:
        return None
    meta = getattr(customer_or_pk, "_meta", None)
    if meta is not None:
        return customer_or_pk.pk
    return customer_or_pk


def parse_customer_pk(raw):
    """The customer pk written as text in ``raw`` (a query parameter, a search term), or
    raise ValidationError: what the pk field refuses, and integers out of its range."""
    from ..hosts import get_customer_model

    field = get_customer_model()._meta.pk
    field = getattr(field, "target_field", field)  # a pk that is a one-to-one link
    value = field.to_python(raw)
    field.run_validators(value)
    return value


class NoticeQuerySet(models.QuerySet):
    def active(self, now=None):
        """Notices not dismissed, not resolved and not expired at ``now``."""
        now = now or timezone.now()
        return self.filter(dismissed_at__isnull=True, resolved_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )

    def active_for(self, customer_or_pk, now=None):
        """The customer's active notices, newest first (a customer instance or its pk;
        None: no notices)."""
        pk = _customer_pk(customer_or_pk)
        if pk is None:
            return self.none()
        return self.active(now).filter(customer_id=pk).order_by("-created_at", "-pk")

    def resolve_for(self, customer_or_pk, *, case=None, now=None, keep=(), include_thanks=False):
        """Mark the customer's unresolved notices resolved (the customer paid): those of
        ``case`` (a Case or its pk), of closed cases and without a case, but never those
        of another case that is still open, nor the pks in ``keep``, nor the thank-you
        notices (payment-received) unless ``include_thanks``. Returns how many notices
        were resolved."""
        pk = _customer_pk(customer_or_pk)
        if pk is None:
            return 0
        case_pk = getattr(case, "pk", case)
        which = Q(case__isnull=True) | ~Q(case__status=Case.Status.OPEN)
        if case_pk is not None:
            which |= Q(case_id=case_pk)
        queryset = (
            self.filter(customer_id=pk, resolved_at__isnull=True)
            .filter(which)
        )
        if not include_thanks:
            queryset = queryset.exclude(step_key=PAYMENT_RECEIVED)
        if keep:
            queryset = queryset.exclude(pk__in=list(keep))
        # An UPDATE with a join is not allowed everywhere: select the pks first.
        pks = list(queryset.values_list("pk", flat=True))
        if not pks:
            return 0
        return self.filter(pk__in=pks, resolved_at__isnull=True).update(
            resolved_at=now or timezone.now()
        )


class Notice(models.Model):
    """One notice shown to a customer inside the host's site."""

    class Level(models.TextChoices):
        INFO = "info", _("Information")
        WARNING = "warning", _("Warning")
        DANGER = "danger", _("Urgent")

    customer = models.ForeignKey(
        customer_model_label(),
        on_delete=models.CASCADE,
        related_name="dunning_notices",
        verbose_name=_("customer"),
    )
    case = models.ForeignKey(
        Case,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="notices",
        verbose_name=_("case"),
    )
    step_key = models.CharField(_("step"), max_length=64, blank=True, default="")
    level = models.CharField(
        _("level"), max_length=16, choices=Level.choices, default=Level.WARNING
    )
    title = models.CharField(_("title"), max_length=255)
    text = models.TextField(_("text"), blank=True, default="")
    action_label = models.CharField(_("action label"), max_length=100, blank=True, default="")
    action_url = models.URLField(_("action URL"), max_length=2000, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True,
        help_text=_("Not shown from this moment on; empty: until dismissed or resolved."),
    )
    seen_at = models.DateTimeField(_("seen at"), null=True, blank=True)
    dismissed_at = models.DateTimeField(_("dismissed at"), null=True, blank=True)
    resolved_at = models.DateTimeField(
        _("resolved at"), null=True, blank=True,
        help_text=_("Set when the case is resolved: the notice disappears by itself."),
    )

    objects = NoticeQuerySet.as_manager()

    class Meta:
        verbose_name = _("in-app notice")
        verbose_name_plural = _("in-app notices")
        ordering = ["-created_at", "-pk"]
        indexes = [
            # A customer's active notices, newest first, straight from the index.
            models.Index(
                fields=["customer", "-created_at"],
                name="dunning_notice_active_idx",
                condition=Q(dismissed_at__isnull=True, resolved_at__isnull=True),
            ),
        ]

    def __str__(self):
        return self.title

    def is_active(self, now=None):
        now = now or timezone.now()
        return (self.dismissed_at is None and self.resolved_at is None
                and (self.expires_at is None or self.expires_at > now))

    @property
    def role(self):
        """The ARIA role of its banner: an urgent notice interrupts (``alert``), the
        others wait their turn (``status``)."""
        return "alert" if self.level == self.Level.DANGER else "status"
