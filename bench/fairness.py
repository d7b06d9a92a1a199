"""Fairness: other chats' reply latency while one chat floods, while an export runs, while an
import runs, against the same chats' latency on the idle bot, in one run.

`ocop-bot run` (SQLite, long polling, the per-sender limits as shipped) talks to the Telegram
emulator over HTTP; the emulator runs in this process, the bot in its own, and holds the bot to
Telegram's limits (30 messages/s overall, one a second per chat, 429 beyond). The database is
seeded first with the registrations of a busy year (bench/national_data.py, spread over the
bot's communes) so that the admin's `/xuat` exports over 20,000 rows.

PROBES chats each send `/help` (a cheap command: one read, one reply) at a steady pace, every
PERIOD seconds, and never sooner than GAP after their previous reply arrived, so Telegram's one
message a second per chat never holds a probe's reply back. A probe's latency is measured at the
emulator, from offering its update to accepting the bot's reply (one clock, this process's).

Phases, in this order; a probe's message belongs to the phase during which it was offered:
- idle: nothing but the probes, until IDLE_SAMPLES replies;
- flood: one chat sends FLOOD messages, 1,000 a second; the phase lasts until every one of them
  is recorded (the emulator holds none unacknowledged) and handled (none pending in the inbox).
  What exceeds the sender's token bucket is recorded and answered with one notice (the product's
  behaviour, measured as it is);
- export: the admin's `/xuat`, until the XLSX document is accepted by the emulator;
- import: the admin sends an XLSX of IMPORT_ROWS certificates, until the final report arrives;
- idle again: the probes alone once more (the idle figure is both idle phases together, so a
  change in the machine's load over the run shows as a difference between them).
Each loaded phase is repeated (a new flooder, another export, another file of new certificates)
until it holds MIN_SAMPLES replies or ran MAX_ROUNDS times.

Targets (issue 10): p99 while flooding <= idle p99 + 1 s; p99 while exporting or importing
<= 2 x idle p99. Run alone: `.venv/bin/python -m bench.fairness`.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from xlsxwriter.workbook import Workbook

from bench.national_data import YEAR, Size, populate
from bot.emulator import Limits, TelegramEmulator
from bot.migrate import upgrade
from bot.settings import DEFAULT_COMMUNES, Settings
from models.admin_units import Area
from models.db import create_engine

OCOP_BOT = str(Path(sys.executable).with_name("ocop-bot"))  # the installed console script
PROBES = int(os.environ.get("BENCH_FAIRNESS_PROBES", "20"))
PERIOD = 1.5  # seconds between two messages of one probe: 20 probes offer ~13 a second
WARM_UP = 5  # replies to each probe before the idle phase begins
GAP = 1.2  # and at least this long after its last reply (Telegram: one a second per chat)
IDLE_SAMPLES = int(os.environ.get("BENCH_FAIRNESS_IDLE_SAMPLES", "300"))
MIN_SAMPLES = int(os.environ.get("BENCH_FAIRNESS_MIN_SAMPLES", "200"))
MAX_ROUNDS = int(os.environ.get("BENCH_FAIRNESS_MAX_ROUNDS", "4"))
FLOOD = 5_000
FLOOD_RATE = 1_000.0  # flood messages offered a second (a script, a stuck key)
EXPORT_ROWS = 20_000  # the export must hold at least this many rows
IMPORT_ROWS = 5_000  # certificates in each imported file (the import's limit)
# The seeded year: 21,300 registrations of which about 5% are rejected (not exported).
SEED = Size(registrations=21_300, certificates=2_000, subjects=8_000)
PROVINCE = Settings.model_fields["ocop_province_code"].default  # the bot runs with the defaults
ADMIN = 9_000_001
FIRST_PROBE = 9_100_001
FIRST_FLOODER = 9_200_001
# Any single wait: a reply, an export, an import, a flood being read. A deadline for a stuck
# bot only; every phase ends when its work is done, whatever the time it took.
STALL = 600.0
FLOOD_TARGET = 1.0  # seconds over the idle p99
LONG_TASK_TARGET = 2.0  # times the idle p99


@dataclass(frozen=True)
class Load:
    """The run's sizes: the defaults are the issue's; the test runs a short form."""

    probes: int = PROBES
    idle_samples: int = IDLE_SAMPLES
    min_samples: int = MIN_SAMPLES
    max_rounds: int = MAX_ROUNDS
    flood: int = FLOOD
    seed: Size = SEED
    export_rows: int = EXPORT_ROWS
    import_rows: int = IMPORT_ROWS


def percentile(values: list[float], share: float) -> float:
    """As bench/conversation.py's: the value at index share × n of the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass
class Phase:
    name: str
    windows: list[tuple[float, float]] = field(default_factory=list)  # (start, end), monotonic
    latencies: list[float] = field(default_factory=list)  # seconds, of the probes offered in it
    work: list[str] = field(default_factory=list)  # what each round did, for the report

    @property
    def seconds(self) -> float:
        return sum(end - start for start, end in self.windows)

    def p(self, share: float) -> float:
        return percentile(self.latencies, share) if self.latencies else float("nan")


@dataclass
class Fairness:
    idle: Phase
    flood: Phase
    export: Phase
    imports: Phase
    idle_after: Phase
    probes: int
    log: str = ""
    samples: list[tuple[float, float]] = field(default_factory=list)  # (offered at, latency)

    @property
    def baseline(self) -> Phase:
        return Phase("idle", [*self.idle.windows, *self.idle_after.windows],
                     [*self.idle.latencies, *self.idle_after.latencies])  # fmt: skip

    @property
    def flood_difference(self) -> float:
        return self.flood.p(0.99) - self.baseline.p(0.99)

    @property
    def export_ratio(self) -> float:
        return self.export.p(0.99) / self.baseline.p(0.99)

    @property
    def import_ratio(self) -> float:
        return self.imports.p(0.99) / self.baseline.p(0.99)

    @property
    def flood_holds(self) -> bool:
        return self.flood_difference <= FLOOD_TARGET

    @property
    def export_holds(self) -> bool:
        return self.export_ratio <= LONG_TASK_TARGET

    @property
    def import_holds(self) -> bool:
        return self.import_ratio <= LONG_TASK_TARGET


def certificate_file(round_: int, rows: int) -> bytes:
    """`rows` certificates none of which is stored yet (their products are the round's)."""
    buffer = io.BytesIO()
    book = Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet("Chứng nhận")
    header = ("Tên sản phẩm", "Người đại diện", "Tên chủ thể", "Loại hình chủ thể", "Xã/phường",
              "Địa chỉ", "Số điện thoại", "Hạng sao", "Ngày cấp", "Số quyết định")  # fmt: skip
    sheet.write_row(0, 0, header)
    communes = [commune.name for commune in Area(PROVINCE, DEFAULT_COMMUNES).communes]
    for n in range(rows):
        household = n % 3 == 0
        sheet.write_row(
            n + 1,
            0,
            (
                f"Nước mắm cá cơm lô {round_}-{n}",
                f"Nguyễn Văn {n}",
                "" if household else f"HTX Thạnh Đức {n}",
                "Hộ" if household else "Hợp tác xã",
                communes[n % len(communes)],
                f"Thôn {n % 20 + 1}",
                f"0905{n:06d}",
                3 + n % 3,
                f"{n % 28 + 1:02d}/{n % 12 + 1:02d}/{2020 + n % 6}",
                f"{n + 1}/QĐ-UBND",
            ),
        )
    book.close()
    return buffer.getvalue()


async def _seed(url: str, size: Size) -> None:
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    try:
        await populate(engine, size, communes=DEFAULT_COMMUNES)
    finally:
        await engine.dispose()


async def _start_bot(folder: Path, emulator: TelegramEmulator) -> asyncio.subprocess.Process:
    environment = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.api_url,
        "TELEGRAM_FILE_URL": emulator.file_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{folder}/ocop.db",
        "OCOP_ADMINS": str(ADMIN),
    }
    log = (folder / "bot.log").open("wb")  # a file, never a pipe nobody reads
    try:
        return await asyncio.create_subprocess_exec(
            OCOP_BOT, "run", cwd=folder, env=environment, stdout=log, stderr=log
        )
    finally:
        log.close()  # the child holds its own copy


def _flood_pending(database: Path, chat: int) -> int:
    """The flooder's updates recorded but not yet handled."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        row = connection.execute(
            "SELECT count(*) FROM inbox WHERE status = 'pending' AND chat_id = ?", (str(chat),)
        ).fetchone()
        return int(row[0])


def _unsent_besides(database: Path, chats: set[int]) -> int:
    """Messages waiting in the outbox for chats other than `chats`."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30) as connection:
        rows = connection.execute(
            "SELECT chat_id, count(*) FROM outbox WHERE status IN ('pending', 'sending') "
            "GROUP BY chat_id"
        ).fetchall()
        return sum(int(count) for chat, count in rows if int(chat) not in chats)


class Probes:
    """PROBES chats sending /help at a steady pace; every reply's latency with its offer time."""

    def __init__(self, emulator: TelegramEmulator, count: int) -> None:
        self.emulator = emulator
        self.chats = [FIRST_PROBE + n for n in range(count)]
        self.samples: list[tuple[float, float]] = []  # (offered at, latency)
        self.answered: dict[int, int] = dict.fromkeys(self.chats, 0)
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._grew = asyncio.Event()

    def start(self) -> None:
        begin = time.monotonic()
        for index, chat in enumerate(self.chats):
            first = begin + index * PERIOD / len(self.chats)
            self._tasks.append(asyncio.create_task(self._probe(chat, first)))

    async def stop(self) -> None:
        """Each probe finishes the message it has in flight."""
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _probe(self, chat: int, at: float) -> None:
        emulator = self.emulator
        while not self._stop.is_set():
            if (delay := at - time.monotonic()) > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), delay)
                    return
                except TimeoutError:
                    pass
            count = len(emulator.messages_to(chat))
            offered = time.monotonic()
            emulator.send_text(chat, "/help", first_name="Thăm dò")
            await emulator.wait_for_messages(chat, count + 1, timeout=STALL)
            accepted = emulator.delivery_times(chat)[count]
            self.samples.append((offered, accepted - offered))
            self.answered[chat] += 1
            self._grew.set()
            at = max(at + PERIOD, accepted + GAP)

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(STALL):
            while not condition():
                self._grew.clear()
                await self._grew.wait()

    def offered_since(self, start: float) -> int:
        return sum(offered >= start for offered, _latency in self.samples)

    def during(self, start: float, end: float) -> list[float]:
        return [latency for offered, latency in self.samples if start <= offered <= end]


async def _wait_for(
    emulator: TelegramEmulator, chat: int, since: int, matches: Callable[[dict], bool]
) -> tuple[dict, float]:
    """The first message to `chat` after its first `since` that `matches`, and the time the
    emulator accepted it."""
    seen = since
    while True:
        messages = await emulator.wait_for_messages(chat, seen + 1, timeout=STALL)
        for index in range(seen, len(messages)):
            if matches(messages[index]):
                return messages[index], emulator.delivery_times(chat)[index]
        seen = len(messages)


async def _poll(check: Callable[[], Awaitable[bool]], step: float = 0.2) -> None:
    """Until `check` holds (the work is done); `step` only sets how soon it is noticed. The
    work is another process's, in its database: nothing tells this one, it can only look."""
    async with asyncio.timeout(STALL):
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(step)


class Scenario:
    def __init__(
        self, folder: Path, emulator: TelegramEmulator, probes: Probes, load: Load
    ) -> None:
        self.database, self.load = folder / "ocop.db", load
        self.emulator, self.probes = emulator, probes
        self.floods = 0
        self.imported = 0

    async def idle(self, phase: Phase, samples: int) -> None:
        start = time.monotonic()
        await self.probes.until(lambda: self.probes.offered_since(start) >= samples)
        phase.windows.append((start, time.monotonic()))

    async def rounds(
        self, phase: Phase, one: Callable[[], Awaitable[tuple[float, float, str]]]
    ) -> None:
        load = self.load
        while len(phase.windows) < load.max_rounds and (
            not phase.windows
            or sum(len(self.probes.during(*w)) for w in phase.windows) < load.min_samples
        ):
            await self.settled()
            start, end, work = await one()
            phase.windows.append((start, end))
            phase.work.append(work)
            print(f"fairness: {phase.name} round {len(phase.windows)}: {work}", flush=True)

    async def settled(self) -> None:
        """Nothing but the probes' replies left to send: a round starts on a quiet bot."""
        chats = set(self.probes.chats)
        await _poll(lambda: asyncio.to_thread(lambda: _unsent_besides(self.database, chats) == 0))

    async def flood(self) -> tuple[float, float, str]:
        chat = FIRST_FLOODER + self.floods
        self.floods += 1
        emulator = self.emulator
        start = time.monotonic()
        for n in range(self.load.flood):
            emulator.send_text(chat, f"tin {n}", first_name="Xả tin")
            if (n + 1) % 100 == 0:  # offered at FLOOD_RATE, not in one block of the loop
                await asyncio.sleep(max(0.0, start + (n + 1) / FLOOD_RATE - time.monotonic()))

        async def handled() -> bool:
            if emulator.pending_updates:  # not all recorded yet
                return False
            return await asyncio.to_thread(_flood_pending, self.database, chat) == 0

        await _poll(handled)
        end = time.monotonic()
        took = end - start
        return start, end, f"{self.load.flood:,} messages recorded and handled in {took:.1f} s"

    async def export(self) -> tuple[float, float, str]:
        emulator = self.emulator
        since = len(emulator.messages_to(ADMIN))
        start = time.monotonic()
        emulator.send_text(ADMIN, f"/xuat {YEAR}", first_name="Quản trị")
        message, end = await _wait_for(emulator, ADMIN, since, lambda m: bool(m["document"]))
        rows = int(re.sub(r"\D", "", (message["caption"] or "").rsplit(":", 1)[-1]) or 0)
        if rows < self.load.export_rows:
            raise AssertionError(f"the export holds {rows} rows, not {self.load.export_rows}")
        return start, end, f"{rows:,} rows exported in {end - start:.1f} s"

    async def import_(self) -> tuple[float, float, str]:
        emulator = self.emulator
        self.imported += 1
        content = certificate_file(self.imported, self.load.import_rows)
        since = len(emulator.messages_to(ADMIN))
        start = time.monotonic()
        emulator.send_document(ADMIN, f"chung-nhan-{self.imported}.xlsx", content)

        def final(message: dict) -> bool:
            text = message["text"] or ""
            return text.startswith("✅") or text.startswith("Chưa nhập")

        message, end = await _wait_for(emulator, ADMIN, since, final)
        figures = re.findall(r"\d[\d.,]*", message["text"].split("\n", 1)[0])
        imported = int(re.sub(r"\D", "", figures[0])) if figures else 0
        if imported != self.load.import_rows:
            raise AssertionError(f"the import stored {imported}: {message['text'][:300]}")
        return start, end, f"{imported:,} certificates imported in {end - start:.1f} s"


async def fairness(folder: Path | None = None, load: Load = Load()) -> Fairness:
    folder = folder or Path(tempfile.mkdtemp(prefix="ocop-bench-fairness-"))
    await _seed(f"sqlite+aiosqlite:///{folder}/ocop.db", load.seed)
    emulator = TelegramEmulator()
    emulator.limits = Limits(overall_per_second=30, per_chat_interval=1.0)
    await emulator.start()
    bot = await _start_bot(folder, emulator)
    probes = Probes(emulator, load.probes)
    phases = [Phase(name) for name in ("idle", "flood", "export", "import", "idle again")]
    idle, flood, export, imports, idle_after = phases
    try:
        probes.start()
        # Warm-up: every probe known to the bot (its first message creates its user), and a
        # few rounds more for what the bot does once after starting (its jobs' first run).
        await probes.until(lambda: min(probes.answered.values()) >= WARM_UP)
        scenario = Scenario(folder, emulator, probes, load)
        await scenario.idle(idle, load.idle_samples)
        await scenario.rounds(flood, scenario.flood)
        await scenario.rounds(export, scenario.export)
        await scenario.rounds(imports, scenario.import_)
        await scenario.settled()
        await scenario.idle(idle_after, load.idle_samples)
        await probes.stop()
    finally:
        if bot.returncode is None:
            bot.terminate()
            await bot.wait()
        await emulator.stop()
    for phase in phases:
        for window in phase.windows:
            phase.latencies += probes.during(*window)
    log = (folder / "bot.log").read_text(errors="replace")[-3000:]
    return Fairness(idle, flood, export, imports, idle_after, load.probes, log, probes.samples)


def _line(phase: Phase) -> str:
    return (
        f"{phase.name}: {len(phase.latencies)} replies in {phase.seconds:.0f} s, "
        f"p50 {phase.p(0.5) * 1000:.0f} ms, p99 {phase.p(0.99) * 1000:.0f} ms"
    )


def summary(result: Fairness) -> str:
    lines = [_line(p) for p in (result.idle, result.idle_after, result.baseline)]
    lines.append(
        f"{_line(result.flood)}: {result.flood_difference:+.2f} s against idle "
        f"({'holds' if result.flood_holds else 'MISSED'}, target +{FLOOD_TARGET:.0f} s); "
        + "; ".join(result.flood.work)
    )
    for phase, ratio, holds in (
        (result.export, result.export_ratio, result.export_holds),
        (result.imports, result.import_ratio, result.import_holds),
    ):
        lines.append(
            f"{_line(phase)}: {ratio:.2f} × idle ({'holds' if holds else 'MISSED'}, target "
            f"≤ {LONG_TASK_TARGET:.0f} ×); " + "; ".join(phase.work)
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(summary(asyncio.run(fairness())), flush=True)
