"""Deprecated: ``dunning.timeline`` moved to ``dunning.queries.timeline`` (issue 15, docs/architecture.md "The tree");
the old path goes in the next release. Importing it warns and gives the new module itself,
so every name (and a monkeypatch through the old path) still reaches the code that runs."""

import sys
import warnings

from dunning.queries import timeline as _moved

warnings.warn(
    "dunning.timeline moved to dunning.queries.timeline; the old path goes in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
