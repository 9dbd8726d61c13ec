"""Deprecated: ``dunning.services`` moved to ``dunning.engine.actions`` (the case actions)
and ``dunning.engine.ondemand`` (send now, a run over chosen customers) (issue 15,
docs/architecture.md "The tree"); the old path goes in the next release. Importing it warns;
every name of both modules is still found here."""

import warnings

from dunning.engine import actions as _actions
from dunning.engine import ondemand as _ondemand
from dunning.engine.actions import *  # noqa: F403
from dunning.engine.ondemand import *  # noqa: F403

warnings.warn(
    "dunning.services moved to dunning.engine.actions and dunning.engine.ondemand; the old "
    "path goes in the next release.",
    DeprecationWarning,
    stacklevel=2,
)


def __getattr__(name):
    for module in (_actions, _ondemand):
        if hasattr(module, name):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
