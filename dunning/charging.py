"""Deprecated: ``dunning.charging`` moved to ``dunning.engine.charging`` (issue 15, docs/architecture.md "The tree");
the old path goes in the next release. Importing it warns and gives the new module itself,
so every name (and a monkeypatch through the old path) still reaches the code that runs."""

import sys
import warnings

from dunning.engine import charging as _moved

warnings.warn(
    "dunning.charging moved to dunning.engine.charging; the old path goes in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
