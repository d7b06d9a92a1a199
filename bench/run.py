"""`make bench`: runs every scenario and writes bench/results.md (figures, baselines, ratios)."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import os
import platform
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench import conversation
from bench.broadcast import broadcast
from bench.chaos import main as chaos_bench
from bench.chaos import summary as summary_of_chaos
from bench.fairness import (
    EXPORT_ROWS,
    FLOOD,
    FLOOD_TARGET,
    IMPORT_ROWS,
    LONG_TASK_TARGET,
    Phase,
    fairness,
)
from bench.memory import idle_memory
from bench.national import national
from bench.overload import overload
from bench.startup import startup

RESULTS = Path(__file__).with_name("results.md")
PRODUCERS = int(os.environ.get("BENCH_PRODUCERS", "2000"))
# The latency run: producers who read each question before answering, offering this many
# updates per second together; far above what a province sends (Telegram lets a bot send 30
# messages/s in all), well below what each bot can take.
PACED_PRODUCERS = 200
PACED_RATE = 400.0
POSTGRES_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)

Row = tuple[str, str, str, str, str, bool]


async def broadcast_rows() -> list[Row]:
    result = await broadcast()
    ok = (
        result.fraction >= 0.9
        and result.throttled == 0
        and result.duplicates == 0
        and result.delivered == result.messages
    )
    return [
        (
            "broadcast: outbox delivery",
            f"{result.per_second:.1f} msg/s, {result.throttled} × 429, "
            f"{result.duplicates} duplicates, {result.delivered}/{result.messages} delivered",
            f"configured limit {result.rate_limit:.0f} msg/s",
            f"{result.fraction:.2f}",
            "≥ 0.90, 0 × 429, 0 duplicates",
            ok,
        )
    ]


async def _postgres_url() -> str | None:
    from models.db import create_engine

    engine = create_engine(POSTGRES_URL)
    try:
        async with asyncio.timeout(5), engine.connect():
            return POSTGRES_URL
    except Exception:
        return None
    finally:
        await engine.dispose()


def _latency(run: conversation.Run) -> str:
    return f"p50 {run.percentile(0.5):.1f} ms, p99 {run.percentile(0.99):.1f} ms"


async def conversation_rows() -> list[Row]:
    """Throughput with every producer answering at once (saturated); latency with producers who
    think between answers, offering PACED_RATE updates/s together (bench/README.md)."""
    bare = await conversation.bare(PRODUCERS)
    bare_paced = await conversation.bare(PACED_PRODUCERS, rate=PACED_RATE)
    peer = await conversation.peer(PRODUCERS)
    peer_paced = await conversation.peer(PACED_PRODUCERS, rate=PACED_RATE)
    runs = [
        (
            "SQLite file",
            await conversation.ours(PRODUCERS),
            await conversation.ours(PACED_PRODUCERS, rate=PACED_RATE),
        )
    ]
    postgres = await _postgres_url()
    if postgres is not None:
        runs.append(
            (
                "PostgreSQL",
                await _ours_on_postgres(postgres, PRODUCERS),
                await _ours_on_postgres(postgres, PACED_PRODUCERS, rate=PACED_RATE),
            )
        )
    paced = f"at {PACED_RATE:.0f} updates/s offered by {PACED_PRODUCERS} producers"
    rows: list[Row] = [
        (
            "conversation: bare echo (baseline)",
            f"{conversation.summary(bare)}; {paced}: {_latency(bare_paced)}",
            "–", "–", "–", True,
        ),
        (
            "conversation: peer (baseline)",
            f"{conversation.summary(peer)}; {paced}: {_latency(peer_paced)}",
            "–", "–", "–", True,
        ),
    ]  # fmt: skip
    for label, run, run_paced in runs:
        versus_peer = run.per_second / peer.per_second
        versus_bare = run.per_second / bare.per_second
        rows.append(
            (
                f"conversation: ours, {label}",
                f"{conversation.summary(run)}; {paced}: {_latency(run_paced)}",
                f"peer {peer.per_second:.0f}/s; bare {bare.per_second:.0f}/s",
                f"{versus_peer:.2f} × peer; {versus_bare:.2f} × bare",
                f"≥ 0.5 × peer, ≥ 0.35 × bare; p99 ≤ 50 ms {paced}",
                versus_peer >= 0.5 and versus_bare >= 0.35 and run_paced.percentile(0.99) <= 50,
            )
        )
    return rows


async def _ours_on_postgres(
    server_url: str, producers: int, rate: float | None = None
) -> conversation.Run:
    """A database of its own on the server, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from models.db import create_engine

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    name = "ocop_bench_conversation"
    async with admin.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        return await conversation.ours(producers, url, rate)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def national_rows() -> list[Row]:
    rows: list[Row] = []
    postgres = await _postgres_url() is not None
    for r in await national(postgres=postgres, server_url=POSTGRES_URL):
        share = f"{r.province}: {r.province_registrations:,} of {r.registrations:,} registrations"
        rows += [
            (
                f"national: digest of a province-wide official ({r.backend})",
                f"{r.digest_seconds:.2f} s ({share}; {r.digest_lines})",
                f"whole country, for information: {r.country_digest_seconds:.2f} s",
                "–",
                "≤ 1 s",
                r.digest_seconds <= 1.0,
            ),
            (
                f"national: /stats of the province ({r.backend})",
                f"{r.stats_seconds:.2f} s",
                f"whole country, for information: {r.country_stats_seconds:.2f} s",
                "–",
                "≤ 1 s",
                r.stats_seconds <= 1.0,
            ),
            (
                f"national: full export, {r.export_rows:,} rows ({r.backend})",
                f"{r.export_cpu_seconds:.1f} s CPU ({r.export_seconds:.1f} s wall), "
                f"peak {r.export_peak_mb:.0f} MB",
                f"same cells, no formatting: {r.baseline_cpu_seconds:.1f} s CPU "
                f"({r.baseline_seconds:.1f} s wall), peak {r.baseline_peak_mb:.0f} MB",
                f"{r.export_ratio:.2f} (wall {r.export_wall_ratio:.2f})",
                "≤ 1.50, peak ≤ 300 MB",
                r.export_ratio <= 1.5 and r.export_peak_mb <= 300,
            ),
        ]
    return rows


async def memory_rows() -> list[Row]:
    m = await idle_memory()
    return [
        (
            f"idle memory: {m.conversations:,} forms in progress",
            f"+{m.delta_mb:.1f} MB ({m.per_conversation_kb:.2f} KB each; "
            f"{m.in_progress:,} forms took their answer)",
            f"no form in progress: {m.rss_none_mb:.0f} MB resident",
            f"{m.delta_mb:.1f} MB",
            "≤ 20 MB",
            m.passed,
        )
    ]


async def startup_rows() -> list[Row]:
    s = await startup()
    return [
        (
            "start-up: `ocop-bot run` to the first reply",
            f"{s.ours_seconds:.2f} s, fresh database ({s.restart_seconds:.2f} s migrated)",
            f"bare PTB echo bot {s.bare_seconds:.2f} s",
            f"{s.ratio:.2f}",
            "≤ 2.00",
            s.passed,
        ),
        (
            "start-up: `ocop-bot sandbox` (`make run`, no token) to its address",
            f"{s.sandbox_seconds:.2f} s, fresh database, both emulators",
            f"`ocop-bot run` to its first reply {s.ours_seconds:.2f} s",
            f"{s.sandbox_seconds / s.ours_seconds:.2f}",
            "≤ 10 s",
            s.sandbox_passed,
        ),
    ]


async def overload_rows() -> list[Row]:
    result = await overload()
    ok = (
        result.peak_rss_mb < 200
        and result.fraction >= 0.9
        and result.throttled == 0
        and result.unhandled == result.missing_replies == result.duplicates == 0
    )
    return [
        (
            f"overload: {result.offered} updates at 200/s for {result.seconds:.0f} s, "
            "SIGKILL halfway",
            f"peak RSS {result.peak_rss_mb:.0f} MB, replies {result.reply_rate:.1f}/s, "
            f"{result.throttled} × 429, {result.unhandled} unhandled, "
            f"{result.missing_replies} unanswered, {result.duplicates} sent twice",
            "Telegram's 30 messages/s",
            f"{result.fraction:.2f}",
            "RSS < 200 MB, ≥ 0.90 of the limit, 0 × 429, 0 lost, 0 twice",
            ok,
        )
    ]


async def chaos_rows() -> list[Row]:
    result = await chaos_bench()
    return [
        (
            "kill chaos: producers register through `ocop-bot run` while it is SIGKILLed",
            summary_of_chaos(result, "polling"),
            "the reference producer's messages",
            f"{len(result.wrong)} wrong",
            "0 lost, 0 twice (but a reply on the wire at a kill), one registration each",
            result.passed,
        )
    ]


async def fairness_rows() -> list[Row]:
    result = await fairness()
    idle = result.baseline
    baseline = (
        f"idle p99 {idle.p(0.99) * 1000:.0f} ms, p50 {idle.p(0.5) * 1000:.0f} ms "
        f"({len(idle.latencies)} replies; before the loads {result.idle.p(0.99) * 1000:.0f} ms, "
        f"after them {result.idle_after.p(0.99) * 1000:.0f} ms)"
    )

    def ours(phase: Phase) -> str:
        return (
            f"p99 {phase.p(0.99) * 1000:.0f} ms, p50 {phase.p(0.5) * 1000:.0f} ms "
            f"({len(phase.latencies)} replies; {'; '.join(phase.work)})"
        )

    probes = f"{result.probes} chats sending /help"
    return [
        (
            f"fairness: {probes} while one chat floods {FLOOD:,} messages",
            ours(result.flood),
            baseline,
            f"{result.flood_difference:+.2f} s",
            f"≤ +{FLOOD_TARGET:.0f} s",
            result.flood_holds,
        ),
        (
            f"fairness: {probes} while the admin exports ≥ {EXPORT_ROWS:,} rows",
            ours(result.export),
            baseline,
            f"{result.export_ratio:.2f}",
            f"≤ {LONG_TASK_TARGET:.2f}",
            result.export_holds,
        ),
        (
            f"fairness: {probes} while the admin imports {IMPORT_ROWS:,} certificates",
            ours(result.imports),
            baseline,
            f"{result.import_ratio:.2f}",
            f"≤ {LONG_TASK_TARGET:.2f}",
            result.import_holds,
        ),
    ]


async def _or_failure(name: str, scenario: Callable[[], Awaitable[list[Row]]]) -> list[Row]:
    """A scenario that raises is one FAIL row saying why; the other scenarios still run."""
    try:
        return await scenario()
    except Exception as error:  # any failure of a scenario is a result to report
        why = html.escape(f"{type(error).__name__}: {error}".splitlines()[0][:300])
        why = why.replace("|", "\\|")  # a cell of the table
        return [(name, f"did not finish: {why}", "–", "–", "–", False)]


async def main() -> str:
    scenarios: list[tuple[str, Callable[[], Awaitable[list[Row]]]]] = [
        ("conversation", conversation_rows),
        ("broadcast", broadcast_rows),
        ("national", national_rows),
        ("idle memory", memory_rows),
        ("start-up", startup_rows),
        ("overload", overload_rows),
        ("kill chaos", chaos_rows),
        ("fairness", fairness_rows),
    ]
    rows = [row for name, scenario in scenarios for row in await _or_failure(name, scenario)]
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
        verdict = "pass" if passed else "FAIL"
        lines.append(f"| {name} | {ours} | {baseline} | {ratio} | {target} | {verdict} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    report = asyncio.run(main())
    RESULTS.write_text(report, encoding="utf-8")
    print(report)
