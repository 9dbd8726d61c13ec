from .case import Case, CaseEvent, CaseInvoice, CaseStep, Run
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
    "Invoice",
    "MessageTemplate",
    "Policy",
    "Run",
    "Step",
    "Suppression",
]
