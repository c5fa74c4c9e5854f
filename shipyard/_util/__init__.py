"""Bottom helpers. This package imports nothing from ``shipyard``."""

from shipyard._util._frozen import FrozenDict
from shipyard._util._ids import current_user, new_id, now

__all__ = ["FrozenDict", "current_user", "new_id", "now"]
