"""The customer's self-service page: a signed personal link in every message leads to a
page (no login) where the customer sees what is overdue and pays, promises, asks for a
payment plan, disputes an invoice or says why the payment was late. See docs/portal.md."""
