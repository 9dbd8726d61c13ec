from .case import ActorKind, Case, CaseEvent, CaseInvoice, CaseStep, Dispute, Run
from .charges import BalanceObservation, CaseCharge
from .consent import Consent
from .defaults import Customer, Invoice
from .letters import Letter
from .notices import Notice
from .payments import PaymentAttempt, PreDunningNotice
from .policy import MessageTemplate, Policy, PolicyRule, RetryStep, Step
from .portal import Feedback, PaymentPlan, PortalRevocation, PortalSubmission
from .tracking import ChannelBreaker, DeliveryEvent, Suppression, UnreadableTrackingEvent
from .webhooks import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ActorKind",
    "BalanceObservation",
    "Case",
    "CaseCharge",
    "CaseEvent",
    "CaseInvoice",
    "CaseStep",
    "ChannelBreaker",
    "Consent",
    "Customer",
    "DeliveryEvent",
    "Feedback",
    "Dispute",
    "Invoice",
    "Letter",
    "MessageTemplate",
    "Notice",
    "PaymentAttempt",
    "PaymentPlan",
    "Policy",
    "PolicyRule",
    "PortalRevocation",
    "PortalSubmission",
    "PreDunningNotice",
    "RetryStep",
    "Run",
    "Step",
    "Suppression",
    "UnreadableTrackingEvent",
    "WebhookDelivery",
    "WebhookEndpoint",
]
