"""The conventions every part of the package follows (issue 15): one exception tree,
one plug-in convention (base classes, results, one loader through conf), a HostAdapter
Protocol that states what the package calls, one helper for each repeated chore."""

import importlib
import inspect
import pkgutil

import pytest

import dunning
from dunning.exceptions import DunningError


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

    from dunning import exceptions, fees, rendering
    from dunning.engine import compliance, simulate
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
