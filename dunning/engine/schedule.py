"""The schedule's rules moved to :mod:`dunning.rules.schedule` (the pure rules package);
this path stays public and re-exports them."""

from dunning.rules.schedule import *  # noqa: F401,F403
