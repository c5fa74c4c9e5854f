"""Compact columnar encoding of metric points, one blob per segment.

A segment holds up to ``SEGMENT_POINTS`` points of one run and key, in logging
order::

    u8 version | u8 flags | u32 count
    steps:  regular (flag 1): i64 first, i64 stride     -- 0 bytes a point
            otherwise:        u32 n, zlib(i64 deltas)
    times:  i64 first_ms, u32 n, zlib(i64 deltas in ms) -- ~0.5 byte a point
    values: count x f64, raw little-endian              -- 8 bytes a point

Values stay raw: zlib saves little on float noise and costs ~150 ms per
million points, which the 1M points/s ingestion target cannot afford; raw
values also decode with no copy. Steps and times are delta-encoded and
compress to almost nothing.
"""

from __future__ import annotations

import struct
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SEGMENT_POINTS = 16384
#: A tail segment smaller than this is rewritten with the next points instead of
#: being followed by another small segment (slow loggers flush a few points a second).
TAIL_MERGE_POINTS = 2048
_VERSION = 1
_REGULAR = 1
_HEAD = struct.Struct("<BBI")
_REG = struct.Struct("<qq")
_LEN = struct.Struct("<I")
_FIRST = struct.Struct("<q")


def encode(
    steps: npt.NDArray[np.int64], values: npt.NDArray[np.float64], times_ms: npt.NDArray[np.int64]
) -> bytes:
    import numpy as np

    count = len(steps)
    parts: list[bytes] = []
    flags = 0
    # Python ints: steps near the int64 limits must not overflow (or warn) here.
    stride = int(steps[1]) - int(steps[0]) if count > 1 else 1
    regular = count <= 1 or (
        -(2**63) <= stride < 2**63
        and int(steps[-1]) - int(steps[0]) == stride * (count - 1)
        and bool(np.all(np.diff(steps) == stride))
    )
    if regular:
        flags |= _REGULAR
        parts.append(_REG.pack(int(steps[0]) if count else 0, stride))
    else:
        z = zlib.compress(np.diff(steps, prepend=np.int64(0)).astype("<i8").tobytes(), 1)
        parts.append(_LEN.pack(len(z)))
        parts.append(z)
    first_ms = int(times_ms[0]) if count else 0
    zt = zlib.compress(np.diff(times_ms, prepend=times_ms[:1]).astype("<i8").tobytes(), 1)
    parts.append(_FIRST.pack(first_ms))
    parts.append(_LEN.pack(len(zt)))
    parts.append(zt)
    parts.append(values.astype("<f8", copy=False).tobytes())
    return _HEAD.pack(_VERSION, flags, count) + b"".join(parts)


def decode(
    data: bytes,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Steps, values and times (ms) of one segment, in logging order."""
    import numpy as np

    version, flags, count = _HEAD.unpack_from(data, 0)
    if version != _VERSION:
        raise ValueError(f"metric segment format {version} is newer than this Shipyard reads")
    pos = _HEAD.size
    if flags & _REGULAR:
        first, stride = _REG.unpack_from(data, pos)
        pos += _REG.size
        steps = first + stride * np.arange(count, dtype=np.int64)
    else:
        (n,) = _LEN.unpack_from(data, pos)
        pos += _LEN.size
        deltas = np.frombuffer(zlib.decompress(data[pos : pos + n]), dtype="<i8")
        pos += n
        steps = np.cumsum(deltas, dtype=np.int64)
    (first_ms,) = _FIRST.unpack_from(data, pos)
    pos += _FIRST.size
    (n,) = _LEN.unpack_from(data, pos)
    pos += _LEN.size
    tdeltas = np.frombuffer(zlib.decompress(data[pos : pos + n]), dtype="<i8")
    pos += n
    times = np.cumsum(tdeltas, dtype=np.int64)
    if count:
        times += first_ms - times[0]
    values = np.frombuffer(data, dtype="<f8", count=count, offset=pos)
    return steps, values.astype(np.float64, copy=False), times
