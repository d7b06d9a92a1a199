"""A token bucket per sender: what one person sends beyond a sustained rate is not handled.

Each sender may send `burst` messages at once and `rate` per second after that; a person filling
in the form by hand never comes near it, a script or a stuck key does. The excess is recorded
(models.inbox, status `excess`) and answered with one polite notice per flood.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

MEMORY = 50_000  # senders remembered; full buckets are forgotten first


@dataclass
class _Bucket:
    tokens: float
    at: float
    flooding: bool = False


class SenderLimits:
    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("the per-sender rate must be positive and the burst at least 1")
        self.rate, self.burst, self.clock = rate, float(burst), clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, sender: str) -> tuple[bool, bool]:
        """(allowed, first excess of a flood): the second is True once per flood, for the one
        notice. During a flood a message is still let through as the rate allows; the flood
        ends once the sender has been quiet long enough to fill the whole burst again."""
        now = self.clock()
        bucket = self._buckets.get(sender)
        if bucket is None:
            if len(self._buckets) >= MEMORY:
                self._forget(now)
            bucket = self._buckets[sender] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        if bucket.tokens >= self.burst:
            bucket.flooding = False
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True, False
        first = not bucket.flooding
        bucket.flooding = True
        return False, first

    def _forget(self, now: float) -> None:
        self._buckets = {
            sender: bucket
            for sender, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.at) * self.rate < self.burst
        }
        if len(self._buckets) >= MEMORY:  # everyone is busy: start afresh rather than grow
            self._buckets.clear()
