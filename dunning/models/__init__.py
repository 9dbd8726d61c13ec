from .case import Case, CaseEvent, CaseInvoice, CaseStep, Run
from .defaults import Customer, Invoice
from .policy import MessageTemplate, Policy, Step

__all__ = [
    "Case",
    "CaseEvent",
    "CaseInvoice",
    "CaseStep",
    "Customer",
    "Invoice",
    "MessageTemplate",
    "Policy",
    "Run",
    "Step",
]
