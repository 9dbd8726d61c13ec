"""Deprecated: ``dunning.reports`` moved to ``dunning.queries.reports`` (issue 15, docs/architecture.md "The tree");
the old path goes in the next release. Importing it warns and gives the new module itself,
so every name (and a monkeypatch through the old path) still reaches the code that runs."""

import sys
import warnings

from dunning.queries import reports as _moved

warnings.warn(
    "dunning.reports moved to dunning.queries.reports; the old path goes in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
