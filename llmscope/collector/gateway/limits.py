"""Per-endpoint rate limits (``limit: {calls, renewal_period}``): a sliding window of calls.

Limits count per collector process; with ``--workers N`` each worker allows ``calls``.
"""

from __future__ import annotations

import math
import time
from collections import deque


class RateLimiter:
    """At most ``calls`` in any ``period`` seconds; :meth:`acquire` says how long to wait."""

    def __init__(self, calls: int, period: float) -> None:
        self.calls = calls
        self.period = period
        self._times: deque[float] = deque()

    def acquire(self, now: float | None = None) -> int:
        """0 if the call may go now (and counts it), else whole seconds until it may."""
        now = time.monotonic() if now is None else now
        while self._times and self._times[0] <= now - self.period:
            self._times.popleft()
        if len(self._times) < self.calls:
            self._times.append(now)
            return 0
        return max(1, math.ceil(self._times[0] + self.period - now))
