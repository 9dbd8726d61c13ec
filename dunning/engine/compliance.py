"""The compliance guards moved to :mod:`dunning.rules.compliance` (the pure rules
package); this path stays public and re-exports them."""

from dunning.rules.compliance import *  # noqa: F401,F403
from dunning.rules.compliance import (  # noqa: F401
    _as_quiet_list,
    _cap_reason_on,
    _cap_retry,
    _day_counts,
    _fits,
    _limit,
    _Tally,
    _wall,
    _zone_named,
)
