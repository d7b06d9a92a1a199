"""A send window that keeps a channel's overall limit whatever the delays on the way.

Telegram refuses (429) a send beyond about 30 in any second, counted where the request
arrives. A token bucket spaces the moments sends *start*; between that moment and the arrival
lie the client library, the connection pool and a loaded event loop, tens of milliseconds that
vary from send to send, and sends that started apart arrive together (bench/README.md: a bucket
at 95% of the rate still drew 429s under overload, every one of them this window).

This window counts instead what may have arrived. A send takes a place when it starts and
keeps it until a second after its answer came back (or it failed): it arrived at the server
between the two, so a new send is let go only when fewer than `limit` sends are either still
on the way or answered within the last second. Then no second at the server ever holds more
than `limit`, for any delays: if Y is the last to start of the sends arriving within one
second, every other one started before Y did, and was either still on the way then or answered
after it arrived, less than a second before Y arrived, so within the second Y counted.

The price is the round trip: each place is held for a second plus it, so the rate is
`limit / (1 + round trip)` at most (on loopback, within 2% of the limit; over 100 ms to Telegram,
about 9% under it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class SendWindow:
    """At most `limit` sends arriving within any `period` seconds, wherever they are delayed."""

    def __init__(self, limit: int, period: float = 1.0) -> None:
        if limit < 1:
            raise ValueError(f"a window lets at least one send through: {limit}")
        self.limit, self.period = limit, period
        self._answered: deque[float] = deque()  # loop times of the latest answers, oldest first
        self._on_the_way = 0
        self._turn = asyncio.Lock()  # first come, first served
        self._changed = asyncio.Event()

    @property
    def taken(self) -> int:
        """Places taken now: sends on the way and those answered within the last period."""
        self._forget(asyncio.get_running_loop().time())
        return self._on_the_way + len(self._answered)

    async def acquire(self) -> None:
        """Wait for a place; call `release` when the send has its answer or has failed."""
        loop = asyncio.get_running_loop()
        async with self._turn:
            while True:
                now = loop.time()
                self._forget(now)
                if self._on_the_way + len(self._answered) < self.limit:
                    self._on_the_way += 1
                    return
                self._changed.clear()
                # A place frees when the oldest answer leaves the window; with none answered
                # yet, the first answer tells when that will be.
                until = self._answered[0] + self.period - now if self._answered else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), until)

    def release(self) -> None:
        self._on_the_way -= 1
        self._answered.append(asyncio.get_running_loop().time())
        self._changed.set()

    def _forget(self, now: float) -> None:
        while self._answered and self._answered[0] <= now - self.period:
            self._answered.popleft()
