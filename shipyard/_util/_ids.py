from __future__ import annotations

import os
import time


def new_id() -> str:
    """A 32-hex-digit UUIDv7: random, and ordered by creation time.

    Time order keeps B-tree inserts local and lets clients make ids offline
    (a run created while the server is unreachable keeps its id after sync).
    """
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 64) & 0xFFF) << 64  # 12 random bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)
    return f"{value:032x}"


def now() -> float:
    """Wall-clock seconds since the epoch (the unit of every stored time)."""
    return time.time()


def current_user() -> str:
    """The login name recorded as who did something ('' where there is none, as in
    some containers: a missing name must never fail the user's call)."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return ""
