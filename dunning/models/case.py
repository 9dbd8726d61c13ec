from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..conf import customer_model_label, invoice_model_label
from .policy import Policy


class Run(models.Model):
    """One execution of ``dunning run`` (dry runs write nothing, so they have none)."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        COMPLETED = "completed", _("Completed")
        FAILED = "failed", _("Failed")
        # Its process stopped (SIGKILL, OOM, a deploy) without recording an end: its lease
        # ran out and a later run or drain marked it (see lease_expires_at).
        ABANDONED = "abandoned", _("Abandoned")

    as_of = models.DateField(_("as of"))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.RUNNING
    )
    host = models.CharField(_("host"), max_length=255, blank=True)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    # The run's heartbeat: moved forward by RUN_LEASE_SECONDS while the run works; a
    # "running" run whose lease has expired is dead and is marked abandoned.
    lease_expires_at = models.DateTimeField(_("lease expires at"), null=True, blank=True)

    class Meta:
        verbose_name = _("run")
        verbose_name_plural = _("runs")
        ordering = ["-started_at"]

    def __str__(self):
        return f"{self.as_of} ({self.get_status_display()})"


class Case(models.Model):
    """One customer in collections: all of its overdue invoices together."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        RESOLVED = "resolved", _("Resolved")
        TERMINATED = "terminated", _("Terminated")
        WRITTEN_OFF = "written_off", _("Written off")

    class AgencyStatus(models.TextChoices):
        """What the collections agency last reported (dunning.agency)."""

        NONE = "", _("None")
        ACCEPTED = "accepted", _("Accepted by the agency")
        IN_PROGRESS = "in_progress", _("In progress at the agency")
        COLLECTED = "collected", _("Collected by the agency")
        PARTIALLY_COLLECTED = "partially_collected", _("Partially collected by the agency")
        UNCOLLECTABLE = "uncollectable", _("Uncollectable")
        RETURNED = "returned", _("Returned by the agency")

    customer = models.ForeignKey(
        customer_model_label(),
        on_delete=models.CASCADE,
        related_name="dunning_cases",
        verbose_name=_("customer"),
    )
    policy = models.ForeignKey(
        Policy, on_delete=models.PROTECT, related_name="cases", verbose_name=_("policy")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.OPEN
    )
    opened_on = models.DateField(_("opened on"))
    opened_at = models.DateTimeField(_("opened at"))
    opened_in = models.ForeignKey(
        Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closed_on = models.DateField(_("closed on"), null=True, blank=True)
    last_step_key = models.CharField(_("last step"), max_length=64, blank=True, default="")
    last_step_on = models.DateField(_("last step on"), null=True, blank=True)
    next_due_on = models.DateField(
        _("next check on"),
        null=True,
        blank=True,
        help_text=_("The date from which the next run looks at this case again."),
    )
    suspended = models.BooleanField(_("service suspended"), default=False)
    needs_person = models.BooleanField(_("needs a person"), default=False)
    paused_until = models.DateField(_("paused until"), null=True, blank=True)
    # Nullable: the run opens cases with one INSERT ... SELECT that writes NULL into every
    # column it does not know.
    pause_reason = models.TextField(_("pause reason"), blank=True, default="")
    promised_on = models.DateField(_("promised to pay on"), null=True, blank=True)
    promised_amount = models.DecimalField(
        _("promised amount"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    # Promises of this case whose date plus the grace passed unpaid (counted by the run,
    # or by the next promise when it comes first); ``promise_broken``: the latest promise
    # (promised_on) is one of them. See dunning.engine.holds.
    broken_promises = models.PositiveSmallIntegerField(
        _("broken promises"), default=0, db_default=0, editable=False)
    promise_broken = models.BooleanField(
        _("latest promise broken"), default=False, db_default=False, editable=False)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("assigned to"),
    )
    # At a collections agency (dunning.agency, docs/agency.md): the agency's key in
    # DUNNING["AGENCIES"] ("" when not), its own reference and last reported status, the
    # day of the hand-over, and the total the agency reported collected so far.
    # Written by the run and the agency's import only: never in a case form.
    agency = models.CharField(_("collections agency"), max_length=64, blank=True, default="",
                              editable=False)
    agency_reference = models.CharField(
        _("agency reference"), max_length=128, blank=True, default="", editable=False)
    agency_status = models.CharField(
        _("agency status"), max_length=32, blank=True, default="", choices=AgencyStatus.choices,
        editable=False)
    handed_over_on = models.DateField(_("handed over on"), null=True, blank=True,
                                      editable=False)
    collected_by_agency = models.DecimalField(
        _("collected by the agency"), max_digits=14, decimal_places=2, default=Decimal("0"),
        editable=False,
        help_text=_("The total the agency reported collected on this case so far."))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("case")
        verbose_name_plural = _("cases")
        ordering = ["-opened_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(status="open"),
                name="dunning_case_one_open_per_customer",
            )
        ]
        indexes = [
            # The run claims due cases in this order, straight from the index.
            models.Index(fields=["status", "next_due_on", "id"], name="dunning_case_due_idx"),
            # The agency export and the admin's agency page (few cases are handed over).
            models.Index(fields=["agency", "handed_over_on"], name="dunning_case_agency_idx",
                         condition=~Q(agency="")),
        ]
        permissions = [
            ("send_by_hand", _("Can send a dunning step by hand")),
            ("write_off", _("Can write off a case")),
        ]

    def __str__(self):
        return _("Case %(pk)s (%(status)s)") % {"pk": self.pk, "status": self.get_status_display()}

    @property
    def is_open(self):
        return self.status == self.Status.OPEN


class AgencyCase(Case):
    """The cases handed over to a collections agency: the admin's page for them, with the
    export for the agency and the import of its status updates (dunning.admin.agency)."""

    class Meta:
        proxy = True
        verbose_name = _("case at a collections agency")
        verbose_name_plural = _("cases at collections agencies")


class CaseStep(models.Model):
    """An executed step of a case and its message: what, when, to whom, which invoices,
    and the outcome. The database guarantees that a case records a step only once."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        # Handed to the channel by a worker that has not recorded the outcome yet.
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        # The worker died while handing the message over: it may or may not have gone
        # out. Never sent again by itself; a person checks (see docs/outbox.md).
        UNKNOWN = "unknown", _("State unknown, check")
        # Not sent: the customer opted out of the step's channel and the step is not a
        # legally required notice.
        SKIPPED = "skipped", _("Skipped (opted out)")
        # An action-only step (a hand-over to an agency, a write-off) whose policy has no
        # message for it: the action was taken, nothing was sent.
        NO_MESSAGE = "no-message", _("No message (action only)")

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="steps")
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="steps")
    step_key = models.CharField(_("step"), max_length=64)
    action = models.CharField(_("action"), max_length=16, blank=True, default="")
    channel = models.CharField(_("channel"), max_length=16, default="email")
    executed_on = models.DateField(_("executed on"))
    created_at = models.DateTimeField(_("created at"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices)
    recipient = models.CharField(_("recipient"), max_length=320, blank=True)
    language = models.CharField(_("language"), max_length=16, blank=True)
    # The A/B variant of the step's message (dunning.variants; "" without variants). The
    # run inserts steps with its own column list, so the default lives in the database too.
    variant = models.CharField(
        _("variant"), max_length=32, blank=True, default="", db_default=""
    )
    reason = models.TextField(_("failure reason"), blank=True)
    invoices = models.JSONField(
        _("invoices"), default=list, blank=True, help_text=_("The invoices the message listed.")
    )
    message_id = models.CharField(_("message id"), max_length=255, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    # The latest ESP tracking event (see dunning.tracking); the run inserts steps with
    # its own column list, so the empty default lives in the database too.
    delivery_status = models.CharField(
        _("delivery status"), max_length=32, blank=True, default="", db_default=""
    )
    delivery_updated_at = models.DateTimeField(_("delivery updated at"), null=True, blank=True)
    # The outbox's retry bookkeeping (transient failures): how often the channel was
    # tried, and when the next try is due (NULL: as soon as a sender gets to it).
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0, db_default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    # When its first try failed for a transient reason (or could not reach the provider):
    # the start of its retry horizon (OUTBOX_RETRY_HORIZON). NULL: it has not failed.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)

    class Meta:
        verbose_name = _("executed step")
        verbose_name_plural = _("executed steps")
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["case", "step_key"], name="dunning_casestep_once"),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="dunning_outbox_idx"),
            # ESP tracking events find their step by message id.
            models.Index(
                fields=["message_id"], name="dunning_casestep_msgid_idx",
                condition=~Q(message_id=""),
            ),
            # "Is there an A/B test?" (the dashboard, dunning.variants): a lookup in a
            # small index instead of a scan of every step.
            models.Index(
                fields=["variant"], name="dunning_casestep_variant_idx",
                condition=~Q(variant=""),
            ),
        ]

    def __str__(self):
        return f"{self.step_key} ({self.get_status_display()})"


class CaseInvoice(models.Model):
    """An invoice a closed case covered (written when a case is terminated, so that no
    later case is opened for it)."""

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="case_invoices")
    invoice = models.ForeignKey(
        invoice_model_label(), on_delete=models.CASCADE, related_name="dunning_case_links"
    )

    class Meta:
        verbose_name = _("case invoice")
        verbose_name_plural = _("case invoices")
        constraints = [
            models.UniqueConstraint(fields=["case", "invoice"], name="dunning_caseinvoice_unique"),
        ]

    def __str__(self):
        return f"{self.case_id}: {self.invoice_id}"


class Dispute(models.Model):
    """A customer disputes an invoice of a case: that invoice is held (not demanded, not
    charged) until the dispute is resolved; the rest of the case is dunned as before. An
    open dispute goes to staff after DUNNING["DISPUTE_ESCALATE_AFTER_DAYS"]."""

    case = models.ForeignKey(
        Case, on_delete=models.CASCADE, related_name="disputes", verbose_name=_("case")
    )
    invoice_number = models.CharField(_("invoice number"), max_length=255)
    reason = models.TextField(_("reason"))
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("opened by"),
    )
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolution = models.TextField(_("resolution"), blank=True, default="")
    # When the run handed the dispute to staff for waiting too long (NULL: not yet).
    escalated_at = models.DateTimeField(_("escalated at"), null=True, blank=True,
                                        editable=False)

    class Meta:
        verbose_name = _("dispute")
        verbose_name_plural = _("disputes")
        ordering = ["opened_at", "pk"]

    def __str__(self):
        return _("Dispute about %(invoice)s") % {"invoice": self.invoice_number}

    @property
    def is_open(self):
        return self.resolved_at is None


class ActorKind(models.TextChoices):
    """Who did something on a case (see dunning.actors)."""

    SYSTEM = "system", _("System")
    CUSTOMER = "customer", _("Customer (self-service page)")
    STAFF = "staff", _("Staff user")
    API = "api", _("API client")


class CaseEvent(models.Model):
    """Everything on a case's timeline that is not an executed step."""

    class Kind(models.TextChoices):
        RESOLVED = "resolved", _("Resolved")
        SUSPENDED = "suspended", _("Service suspended")
        RESTORED = "restored", _("Service restored")
        TERMINATED = "terminated", _("Account terminated")
        ERROR = "error", _("Error")
        SIGNAL_ERROR = "signal-error", _("Signal receiver failed")
        NOTE = "note", _("Note")
        CALL = "call", _("Call")
        ASSIGNED = "assigned", _("Assigned")
        PAUSED = "paused", _("Paused")
        RESUMED = "resumed", _("Resumed")
        ESCALATED = "escalated", _("Escalated")
        WRITTEN_OFF = "written-off", _("Written off")
        PROMISE = "promise", _("Promise to pay")
        PROMISE_BROKEN = "promise-broken", _("Promise to pay broken")
        DISPUTE = "dispute", _("Dispute opened")
        DISPUTE_RESOLVED = "dispute-resolved", _("Dispute resolved")
        SENT_BY_HAND = "sent-by-hand", _("Step sent by hand")
        DELIVERY = "delivery", _("Delivery event")
        DELIVERY_UNKNOWN = "delivery-unknown", _("Delivery state unknown")
        DELIVERY_CONFIRMED = "delivery-confirmed", _("Delivery state settled")
        SEND_AGAIN = "send-again", _("Message queued again")
        PAYMENT_DECLINED = "payment-declined", _("Payment declined")
        PAYMENT_COLLECTED = "payment-collected", _("Payment collected")
        PAYMENT_UPDATE_METHOD = "payment-update-method", _("Payment method must be updated")
        # A bank debit (SEPA, ACH) the processor accepted but has not settled yet.
        PAYMENT_PENDING = "payment-pending", _("Payment pending")
        # The bank wants the customer to authenticate the payment (3-D Secure, SCA).
        PAYMENT_AUTHENTICATION = "payment-authentication", _("Payment needs authentication")
        # The customer's self-service page (dunning.portal).
        PLAN_REQUESTED = "plan-requested", _("Payment plan requested")
        PLAN_APPROVED = "plan-approved", _("Payment plan approved")
        PLAN_BROKEN = "plan-broken", _("Payment plan broken")
        PLAN_COMPLETED = "plan-completed", _("Payment plan completed")
        FEEDBACK = "feedback", _("Late-payment feedback")
        CONSENT = "consent", _("Contact preferences changed")
        CARD_REFRESHED = "card-refreshed", _("Card details refreshed")
        # A step on the call channel: the case waits in the call queue with this script.
        CALL_QUEUED = "call-queued", _("Call queued")
        FALLBACK = "channel-fallback", _("Sent by the fallback channel")
        # The end of the road (dunning.agency).
        HANDED_OVER = "handed-over", _("Handed over to a collections agency")
        AGENCY_UPDATE = "agency-update", _("Collections agency update")
        POLICY_RULE = "policy-rule", _("Policy chosen by a rule")
        # Reminder fees and interest handed to the host (dunning.charging).
        CHARGED = "charged", _("Fees and interest charged")

    case = models.ForeignKey(Case, on_delete=models.CASCADE, related_name="events")
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(_("kind"), max_length=32, choices=Kind.choices)
    created_at = models.DateTimeField(_("created at"))
    message = models.TextField(_("message"), blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("by"),
    )
    #: Through which door the event came (dunning.actors): the customer on the
    #: self-service page, a staff user in the admin, an API client, or the system.
    actor_kind = models.CharField(
        _("done through"), max_length=16, choices=ActorKind.choices, default=ActorKind.SYSTEM,
    )

    class Meta:
        verbose_name = _("case event")
        verbose_name_plural = _("case events")
        ordering = ["created_at", "pk"]

    def __str__(self):
        return self.get_kind_display()
