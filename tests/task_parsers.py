"""Stand-ins for the certificate parser, run in the parse worker's child process by
tests/test_long_tasks.py (the child finds them by name, so they live in a small module)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any


def hog(content: bytes, file_name: str, area: Any, today: dt.date) -> list[Any]:
    """Needs far more memory than the limit allows (a zip bomb would)."""
    blocks = [bytearray(64 * 1024 * 1024) for _ in range(64)]  # 4 GiB
    return [len(blocks)]


def sleeper(content: bytes, file_name: str, area: Any, today: dt.date) -> list[Any]:
    """Never finishes in time."""
    time.sleep(120)
    return []


def slow(content: bytes, file_name: str, area: Any, today: dt.date) -> list[Any]:
    """Says it has started (a file named by `content`), then takes two seconds to find nothing."""
    Path(content.decode()).write_text("parsing")
    time.sleep(2)
    return []
