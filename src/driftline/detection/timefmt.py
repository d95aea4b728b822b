"""RFC 3339 formatting of epoch milliseconds (UTC)."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from driftline.contract.event import MAX_EVENT_MS

__all__ = ["rfc3339", "MAX_EVENT_MS"]


def rfc3339(ms: int | float | None) -> str | None:
    """``1700000000123`` → ``'2023-11-14T22:13:20.123Z'``; ``None`` stays ``None``.

    Never raises: a moment outside years 1970 to 9999 (which no accepted event
    time is, but a sum of one and a span may be) is written as the nearest end
    of that range, NaN as ``None``.

    >>> rfc3339(0), rfc3339(10**18)
    ('1970-01-01T00:00:00.000Z', '9999-12-31T23:59:59.999Z')
    """
    if ms is None or ms != ms:
        return None
    ms = min(max(ms, 0), MAX_EVENT_MS)
    whole = int(math.floor(ms))
    dt = datetime.fromtimestamp(whole // 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{whole % 1000:03d}Z"
