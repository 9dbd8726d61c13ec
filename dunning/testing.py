"""Helpers for the tests of host projects (and of django-dunning itself).

``create_customer`` and ``create_invoice`` build host objects through the field mapping,
so the same test works on the shipped models and on a host's own (where every mapped
field is a direct field of the model)::

    from dunning.testing import create_customer, create_invoice, override_dunning_settings

    customer = create_customer(name="Ada", email="ada@example.com", language="de")
    create_invoice(customer, number="INV-1", amount_due="120.00", currency="EUR",
                   due_date=date(2026, 1, 1))
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from django.test import override_settings

from .conf import dunning_settings
from .hosts import get_adapter, get_customer_model, get_invoice_model

_numbers = itertools.count(1)


def override_dunning_settings(**values):
    """``override_settings`` for keys of ``DUNNING``, keeping the others."""
    return override_settings(DUNNING={**dunning_settings.user_settings, **values})


def _host_fields(mapping_lookup, values):
    fields = {}
    for name, value in values.items():
        path = mapping_lookup(name)
        if path is None:
            continue
        if "__" in path:
            raise ValueError(
                f"{name!r} is mapped through a relation ({path!r}); create that object yourself."
            )
        fields[path] = value
    return fields


def create_customer(**values):
    """Create a host customer from canonical values (name, email, phone, language, timezone)."""
    adapter = get_adapter()
    values.setdefault("name", f"Customer {next(_numbers)}")
    values.setdefault("email", f"customer{next(_numbers)}@example.com")
    return get_customer_model()._default_manager.create(
        **_host_fields(adapter.customer_field, values)
    )


def create_invoice(customer, **values):
    """Create a host invoice from canonical values (number, amount_due, currency, due_date)."""
    adapter = get_adapter()
    values.setdefault("number", f"INV-{next(_numbers):06d}")
    values.setdefault("currency", "EUR")
    values["amount_due"] = Decimal(str(values.get("amount_due", "100.00")))
    values["customer"] = customer
    return get_invoice_model()._default_manager.create(
        **_host_fields(adapter.invoice_field, values)
    )
