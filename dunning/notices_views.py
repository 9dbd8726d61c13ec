"""Deprecated: ``dunning.notices_views`` moved to ``dunning.notices.views`` (issue 15, docs/architecture.md "The tree");
the old path goes in the next release. Importing it warns and gives the new module itself,
so every name (and a monkeypatch through the old path) still reaches the code that runs."""

import sys
import warnings

from dunning.notices import views as _moved

warnings.warn(
    "dunning.notices_views moved to dunning.notices.views; the old path goes in the next release.",
    DeprecationWarning,
    stacklevel=2,
)
sys.modules[__name__] = _moved
