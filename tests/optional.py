"""Optional parts that need system libraries: skipped where they are missing, except in
CI (`.ci/run` installs them, so a missing one there is a failure)."""

import os

import pytest


def weasyprint():
    """The weasyprint module, or skip the test (module) when it or Pango is missing."""
    try:
        import weasyprint as module
    except (ImportError, OSError) as exc:  # OSError: Pango's shared library is missing
        if os.environ.get("CI"):
            raise
        pytest.skip(f"WeasyPrint cannot be used here: {exc}", allow_module_level=True)
    return module
