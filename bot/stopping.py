"""What every worker does with its tasks when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Collection


async def finish_within(
    tasks: Collection[asyncio.Task[object]], grace: float
) -> set[asyncio.Task[object]]:
    """Let `tasks` finish within `grace` seconds, cancel those still running and wait until
    they have unwound; returns the cancelled ones."""
    if not tasks:
        return set()
    _done, late = await asyncio.wait(tasks, timeout=grace)
    for task in late:
        task.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    return late
