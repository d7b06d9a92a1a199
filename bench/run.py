"""`make bench`: runs every scenario and writes bench/results.md (figures, baselines, ratios)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
from pathlib import Path

from bench.broadcast import broadcast

RESULTS = Path(__file__).with_name("results.md")


async def main() -> str:
    rows = []
    result = await broadcast()
    rows.append(
        (
            "broadcast: outbox delivery",
            f"{result.per_second:.1f} msg/s, {result.throttled} × 429, "
            f"{result.duplicates} duplicates, {result.delivered}/{result.messages} delivered",
            f"configured limit {result.rate_limit:.0f} msg/s",
            f"{result.fraction:.2f}",
            "≥ 0.90, 0 × 429, 0 duplicates",
            result.fraction >= 0.9
            and result.throttled == 0
            and result.duplicates == 0
            and result.delivered == result.messages,
        )
    )
    lines = [
        "# Benchmark results",
        "",
        f"Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `make bench` on "
        f"{os.cpu_count()} cores ({platform.machine()}, Python {platform.python_version()}).",
        "",
        "| scenario | ours | baseline | ratio | target | pass |",
        "|---|---|---|---|---|---|",
    ]
    for name, ours, baseline, ratio, target, passed in rows:
        lines.append(
            f"| {name} | {ours} | {baseline} | {ratio} | {target} | "
            f"{'pass' if passed else 'FAIL'} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    report = asyncio.run(main())
    RESULTS.write_text(report, encoding="utf-8")
    print(report)
