from .case import Case, CaseEvent, CaseInvoice, CaseStep, Dispute, Run
from .defaults import Customer, Invoice
from .payments import PaymentAttempt
from .policy import MessageTemplate, Policy, Step
from .portal import Feedback, PaymentPlan, PortalRevocation
from .tracking import DeliveryEvent, Suppression

__all__ = [
    "Case",
    "CaseEvent",
    "CaseInvoice",
    "CaseStep",
    "Customer",
    "DeliveryEvent",
    "Feedback",
    "Dispute",
    "Invoice",
    "MessageTemplate",
    "PaymentAttempt",
    "PaymentPlan",
    "Policy",
    "PortalRevocation",
    "Run",
    "Step",
    "Suppression",
]
