"""RFC 3339 formatting of epoch milliseconds (UTC)."""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["rfc3339"]


def rfc3339(ms: int | float | None) -> str | None:
    """``1700000000123`` → ``'2023-11-14T22:13:20.123Z'``; ``None`` stays ``None``."""
    if ms is None:
        return None
    dt = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"
