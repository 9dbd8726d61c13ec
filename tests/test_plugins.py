"""The conventions every part of the package follows (issue 15): one exception tree,
one plug-in convention (base classes, results, one loader through conf), a HostAdapter
Protocol that states what the package calls, one helper for each repeated chore."""

import importlib
import inspect
import pkgutil
import re
from decimal import Decimal

import pytest

import dunning
from dunning.channels.base import Channel, Outcome
from dunning.channels.sms_backends.base import BaseSmsBackend, SmsResult
from dunning.exceptions import DunningError
from dunning.payments.base import ChargeResult, PaymentBackend


def dunning_modules():
    for info in pkgutil.walk_packages(dunning.__path__, "dunning."):
        if ".migrations." in info.name or info.name.endswith(".migrations"):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:  # an optional dependency (twilio, stripe) is not installed
            continue


# -- one exception tree -------------------------------------------------------------------
def test_every_public_exception_is_a_dunning_error():
    from rest_framework.exceptions import APIException

    outside = set()
    for module in dunning_modules():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__.startswith("dunning") and not name.startswith("_")
                    and not issubclass(obj, APIException)  # an HTTP answer of DRF
                    and not issubclass(obj, DunningError)):
                outside.add(f"{obj.__module__}.{obj.__qualname__}")
    assert not outside


def test_errors_keep_their_other_bases_and_old_import_paths():
    from django.core.exceptions import ImproperlyConfigured

    from dunning import exceptions, fees
    from dunning.engine import compliance, simulate
    from dunning.messages import rendering
    from dunning.portal import tokens

    assert fees.MissingRateError is exceptions.MissingRateError
    assert rendering.UnknownVariable is exceptions.UnknownVariable
    assert rendering.UnsafeTemplate is exceptions.UnsafeTemplate
    assert compliance.ComplianceConfigError is exceptions.ComplianceConfigError
    assert compliance.NoSendTime is exceptions.NoSendTime
    assert simulate.SimulationError is exceptions.SimulationError
    assert tokens.InvalidToken is exceptions.InvalidToken
    for cls in (exceptions.MissingRateError, exceptions.ComplianceConfigError,
                exceptions.NoSendTime, exceptions.SimulationError):
        assert issubclass(cls, ValueError)
    assert issubclass(exceptions.DunningConfigurationError, ImproperlyConfigured)
    with pytest.raises(DunningError):
        tokens.read_token("not a token")


# -- the HostAdapter Protocol states everything the package calls ---------------------
def _adapter_uses():
    """``{name}`` of every attribute dunning reads on an adapter: ``adapter.x``,
    ``self.adapter.x``, ``run.adapter.x``, ``get_adapter().x``."""
    import ast
    from pathlib import Path

    names = {}
    for path in Path(dunning.__file__).parent.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            value = node.value
            if ((isinstance(value, ast.Name) and value.id == "adapter")
                    or (isinstance(value, ast.Attribute) and value.attr == "adapter")
                    or (isinstance(value, ast.Call) and isinstance(value.func, ast.Name)
                        and value.func.id == "get_adapter")):
                names.setdefault(node.attr, path.name)
    return names


def protocol_members():
    from dunning.hosts import HostAdapter

    own = {name for name in vars(HostAdapter) if not name.startswith("_")}
    return own | set(HostAdapter.__annotations__)


def test_the_host_adapter_protocol_declares_every_attribute_the_package_uses():
    uses = _adapter_uses()
    assert {"overdue_invoices", "customer_rows", "customer_queryset"} <= set(uses)  # the scan works
    undeclared = {name: where for name, where in uses.items() if name not in protocol_members()}
    assert not undeclared


class ProtocolOnlyAdapter:
    """An adapter written to the Protocol alone: no FieldMapAdapter base, only the
    members HostAdapter declares (each delegating to a field-map adapter)."""

    def __init__(self):
        from dunning.hosts import FieldMapAdapter

        self._inner = FieldMapAdapter()
        self.customer_annotation = self._inner.customer_annotation

    def __getattribute__(self, name):
        if not name.startswith("_") and name != "customer_annotation" and name not in protocol_members():
            raise AttributeError(f"{name} is not part of HostAdapter")
        return object.__getattribute__(self, name)


def _delegate(name):
    return property(lambda self: getattr(self._inner, name))


for _name in protocol_members() - {"customer_annotation"}:
    setattr(ProtocolOnlyAdapter, _name, _delegate(_name))


def test_an_adapter_written_to_the_protocol_alone_runs_dunning(settings, run, overdue_customer,
                                                              mailoutbox):
    from dunning.hosts import get_adapter
    from dunning.messages.history import customer_history
    from dunning.models import Case

    settings.DUNNING = {**getattr(settings, "DUNNING", {}),
                        "ADAPTER": "tests.test_plugins.ProtocolOnlyAdapter"}
    assert isinstance(get_adapter(), ProtocolOnlyAdapter)
    customer = overdue_customer(email="ada@example.com")
    for n in range(0, 30):
        result = run(n)
        assert not result.failures
    assert mailoutbox and all(m.to == ["ada@example.com"] for m in mailoutbox)
    case = Case.objects.get(customer=customer)
    assert case.steps.count() == len(mailoutbox)
    customer_history([customer.pk], as_of=case.opened_on)  # the history's own queries


# -- one plug-in convention -----------------------------------------------------------
class HalfChannel(Channel):
    key = "half"

    def recipient(self, customer):
        return "x", ""


class HalfSmsBackend(BaseSmsBackend):
    pass


class HalfPaymentBackend(PaymentBackend):
    def stored_methods(self, customer):
        return []


class BatchSmsBackend(BaseSmsBackend):
    def send_messages(self, messages):
        return [SmsResult(True) for _ in messages]


@pytest.mark.parametrize("call, message", [
    (lambda: HalfChannel().build(None), "HalfChannel must implement build()"),
    (lambda: HalfChannel().send([]), "HalfChannel must implement send()"),
    (lambda: HalfSmsBackend().send_message(None), "HalfSmsBackend must implement send_message()"),
    (lambda: HalfPaymentBackend().charge(None, Decimal("1.00"), "EUR", "pm_1"),
     "HalfPaymentBackend must implement charge()"),
])
def test_an_unimplemented_method_names_the_class_in_every_family(call, message):
    with pytest.raises(NotImplementedError, match=re.escape(message)):
        call()


def test_every_family_shares_one_base_style_and_one_result_shape():
    from dunning.plugins import Plugin, Result

    for base in (Channel, BaseSmsBackend, PaymentBackend):
        assert issubclass(base, Plugin) and base.required
    outcome = Outcome(False, reason="TimeoutError: timed out", transient=True)
    sms = SmsResult(False, reason="21610: opted out", code="21610")
    charge = ChargeResult(False, message="Connection reset", error=True)
    declined = ChargeResult(False, decline_code="insufficient_funds", message="Declined")
    for result in (outcome, sms, charge, declined):
        assert isinstance(result, Result) and result.failed and result.reason
    assert [r.transient for r in (outcome, sms, charge, declined)] == [True, False, True, False]
    assert charge.message == "Connection reset" and sms.code == "21610"  # own fields kept


def test_missing_methods_are_listed_per_family():
    assert HalfChannel.missing_methods() == ["build", "send"]
    assert HalfSmsBackend.missing_methods() == ["send_message"]
    assert BatchSmsBackend.missing_methods() == []  # a batch API is enough
    assert HalfPaymentBackend.missing_methods() == ["charge"]
    from dunning.channels.email import EmailChannel
    from dunning.payments.simulated import SimulatedBackend

    assert EmailChannel.missing_methods() == [] and SimulatedBackend.missing_methods() == []


# -- one loader through conf ------------------------------------------------------------
def test_the_loader_builds_each_family_with_its_options(settings):
    from dunning.channels.letter import LetterChannel
    from dunning.channels.sms_backends.locmem import SmsBackend as LocmemBackend
    from dunning.conf import load_plugin
    from dunning.payments.simulated import SimulatedBackend

    settings.DUNNING = {"SMS_BACKEND": "dunning.channels.sms_backends.locmem.SmsBackend",
                        "PAYMENT_BACKEND": "dunning.payments.simulated.SimulatedBackend"}
    assert isinstance(load_plugin("SMS_BACKEND"), LocmemBackend)
    assert isinstance(load_plugin("PAYMENT_BACKEND"), SimulatedBackend)
    letter = load_plugin("CHANNELS", "letter", optional={"using": "default"})
    assert isinstance(letter, LetterChannel)
    assert load_plugin("CHANNELS", "fax") is None
    settings.DUNNING = {}
    assert load_plugin("PAYMENT_BACKEND") is None


@pytest.mark.parametrize("dunning, key, entry, message", [
    ({"SMS_BACKEND": "no.such.Backend"}, "SMS_BACKEND", None,
     "DUNNING['SMS_BACKEND'] = 'no.such.Backend' cannot be imported"),
    ({"SMS_BACKEND": "dunning.channels.sms.SmsChannel"}, "SMS_BACKEND", None,
     "DUNNING['SMS_BACKEND'] = 'dunning.channels.sms.SmsChannel' is not an SMS backend class"),
    ({"PAYMENT_BACKEND": "tests.test_plugins.HalfPaymentBackend"}, "PAYMENT_BACKEND", None,
     "HalfPaymentBackend must implement charge()"),
    ({"CHANNELS": {"half": "tests.test_plugins.HalfChannel"}}, "CHANNELS", "half",
     "DUNNING['CHANNELS']['half'] = 'tests.test_plugins.HalfChannel': HalfChannel must "
     "implement build(), send()"),
    ({"SMS_BACKEND": "dunning.channels.sms_backends.locmem.SmsBackend",
      "SMS_BACKEND_OPTIONS": {"acount_sid": "AC1"}}, "SMS_BACKEND", None,
     "DUNNING['SMS_BACKEND_OPTIONS'] does not fit dunning.channels.sms_backends.locmem.SmsBackend"),
    ({"PAYMENT_BACKEND": "dunning.payments.simulated.SimulatedBackend",
      "PAYMENT_BACKEND_OPTIONS": {"nonsense": 1}}, "PAYMENT_BACKEND", None,
     "DUNNING['PAYMENT_BACKEND_OPTIONS'] does not fit"),
])
def test_the_loader_names_the_setting_of_a_bad_plugin(settings, dunning, key, entry, message):
    from dunning.conf import load_plugin
    from dunning.exceptions import DunningConfigurationError

    settings.DUNNING = dunning
    with pytest.raises(DunningConfigurationError, match=re.escape(message)):
        load_plugin(key, entry)


def test_manage_py_check_reports_a_plugin_that_leaves_a_method_unimplemented(settings):
    from dunning.checks import code_setting_errors

    settings.DUNNING = {"PAYMENT_BACKEND": "tests.test_plugins.HalfPaymentBackend",
                        "CHANNELS": {"half": "tests.test_plugins.HalfChannel"}}
    [payment] = code_setting_errors("PAYMENT_BACKEND")
    assert payment.id == "dunning.E092" and "must implement charge()" in payment.msg
    [channel] = code_setting_errors("CHANNELS")
    assert "HalfChannel must implement build(), send()" in channel.msg


def test_every_dotted_path_setting_is_in_the_one_table_and_imported_through_conf(settings):
    from dunning.conf import CODE_SETTINGS, DEFAULTS, IMPORT_STRINGS, dunning_settings

    assert CODE_SETTINGS is IMPORT_STRINGS
    assert set(IMPORT_STRINGS) <= set(DEFAULTS)
    settings.DUNNING = {"RISK_SCORE": "tests.test_plugins.risk",
                        "PORTAL_PAY_URL": "tests.test_plugins.pay_url"}
    assert dunning_settings.RISK_SCORE is risk and dunning_settings.PORTAL_PAY_URL is pay_url
    settings.DUNNING = {"PORTAL_PAY_URL": "https://pay.example/{customer}?t={token}"}
    assert dunning_settings.PORTAL_PAY_URL == "https://pay.example/{customer}?t={token}"


def risk(customer_row, balances):
    return 1


def pay_url(customer, invoices, token):
    return "https://pay.example/"


# -- one helper each ----------------------------------------------------------------------
def test_describe_and_backoff():
    import datetime

    from dunning.failures import backoff, describe

    assert describe(TimeoutError("timed out")) == "TimeoutError: timed out"
    assert len(describe(ValueError("x" * 5000))) == 2000
    assert backoff(1, 60, 3600) == datetime.timedelta(seconds=60)
    assert backoff(4, 60, 3600) == datetime.timedelta(seconds=480)
    assert backoff(40, 60, 3600) == datetime.timedelta(seconds=3600)
    assert backoff(1, 0, 600, least=1.0) == datetime.timedelta(seconds=1)


def test_a_failing_receiver_is_recorded_on_the_timeline_in_one_shape(case, mailoutbox):
    from dunning import signals
    from dunning.engine import actions as services
    from dunning.models import CaseEvent

    def books_the_loss(sender, case, customer, **kwargs):
        raise KeyError("ledger")

    signals.case_written_off.connect(books_the_loss)
    try:
        services.send_written_off(case)
    finally:
        signals.case_written_off.disconnect(books_the_loss)
    [event] = CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.SIGNAL_ERROR)
    assert event.message == ("case_written_off: test_a_failing_receiver_is_recorded_on_the_"
                             "timeline_in_one_shape.<locals>.books_the_loss: KeyError: 'ledger'")
