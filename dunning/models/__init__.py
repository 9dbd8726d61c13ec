from .case import Case, CaseEvent, CaseInvoice, CaseStep, Dispute, Run
from .defaults import Customer, Invoice
from .policy import MessageTemplate, Policy, Step
from .tracking import DeliveryEvent, Suppression

__all__ = [
    "Case",
    "CaseEvent",
    "CaseInvoice",
    "CaseStep",
    "Customer",
    "DeliveryEvent",
    "Dispute",
    "Invoice",
    "MessageTemplate",
    "Policy",
    "Run",
    "Step",
    "Suppression",
]
