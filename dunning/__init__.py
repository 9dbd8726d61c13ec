"""django-dunning: escalating, polite reminders for overdue invoices, on your own models."""

__version__ = "0.1.0"
