"""How the command line writes a moment: in UTC, with the zone written, whatever the machine's zone."""

from __future__ import annotations

import time


def utc(ts: float) -> str:
    """`ts` (Unix seconds) as `2026-12-07 01:42:00 UTC`."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))
