"""The send window: what a server counts never passes the limit, whatever the delays."""

from __future__ import annotations

import asyncio
import random

import pytest

from bot.send_window import SendWindow


async def test_no_period_at_the_server_holds_more_than_the_limit_whatever_the_delays() -> None:
    """Sends are delayed on their way and on the way back by different amounts, several times
    the gaps between them (as a loaded event loop and a connection pool delay them): the server
    still never sees more than `limit` arrive within one period."""
    limit, period = 5, 0.2
    window = SendWindow(limit, period)
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    rng = random.Random(7)

    async def send() -> None:
        await window.acquire()
        try:
            await asyncio.sleep(rng.choice([0.0, 0.0, period / 4, period / 2]))  # on its way
            arrivals.append(loop.time())
            await asyncio.sleep(rng.choice([0.0, period / 4]))  # the answer on its way back
        finally:
            window.release()

    await asyncio.gather(*(send() for _ in range(60)))

    arrivals.sort()
    busiest = max(
        sum(1 for later in arrivals[i:] if later - first < period)
        for i, first in enumerate(arrivals)
    )
    assert busiest <= limit, busiest
    assert len(arrivals) == 60


async def test_a_full_window_lets_the_next_send_go_a_period_after_the_oldest_answer() -> None:
    limit, period = 3, 0.2
    window = SendWindow(limit, period)
    loop = asyncio.get_running_loop()
    for _ in range(limit):  # an idle window lets `limit` go at once
        await asyncio.wait_for(window.acquire(), timeout=None)
    assert window.taken == limit
    for _ in range(limit):
        window.release()
    answered = loop.time()
    await window.acquire()
    assert loop.time() - answered >= period
    window.release()


async def test_a_send_that_fails_keeps_its_place_for_the_period() -> None:
    """A send that timed out may have arrived: it counts as one that did."""
    window = SendWindow(1, 0.2)
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await window.acquire()
        try:
            raise TimeoutError
        finally:
            window.release()
    failed = loop.time()
    await window.acquire()
    assert loop.time() - failed >= 0.2
    window.release()
