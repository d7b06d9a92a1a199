"""The bot as a server installs it: the wheel built from this checkout, installed (not editable)
with the locked dependencies into a fresh virtual environment, run from an empty folder.

One registration end to end by long polling, one by webhook with the secret; a webhook call
without the secret gets 403 and changes nothing; /healthz answers; the operator's commands work
from there too. The migrations and the catalogs must come from the installed package: the
checkout is nowhere on the path of the installed bot."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import aiohttp
import pytest

from bench.chaos import _texts, _walk
from bot.emulator import TelegramEmulator
from tests.sandbox_harness import running

REPO = Path(__file__).resolve().parent.parent
SECRET = "installed-webhook-secret-0123456789abcdefXYZ"
CATALOGS = "locales/*/LC_MESSAGES/messages.mo"
SHIPPED = [  # what an installed bot reads besides its code
    "handlers/locales/vi/LC_MESSAGES/messages.mo",
    "bot/migrations/env.py",
    "bot/migrations/script.py.mako",
    "bot/sandbox/static/index.html",
]
INSTALL_TIMEOUT = 900  # seconds: pip may fetch every locked wheel on a cold cache


def _run(command: list[str], cwd: Path | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The bin folder of a fresh virtual environment holding the wheel and the locked
    dependencies, installed as docs/deploy.md says."""
    root = tmp_path_factory.mktemp("installed")
    # Built from the tracked files and the compiled catalogs only, as a clean clone has them: a
    # build/ folder left in the checkout would otherwise lend the wheel files it no longer gets.
    source = root / "source"
    tracked = _run(["git", "ls-files", "-z"], cwd=REPO).split("\0")
    for name in [*filter(None, tracked), *(str(p.relative_to(REPO)) for p in REPO.glob(CATALOGS))]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root), str(source)])
    [wheel] = root.glob("ocop_bot-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    for needed in SHIPPED:
        assert needed in shipped, f"the wheel does not ship {needed}"
    requirements = root / "requirements.txt"
    uv = str(Path(sys.executable).with_name("uv"))
    _run(
        [
            uv,
            "export",
            "--frozen",
            "--offline",
            "--no-dev",
            "--no-emit-project",
            "--quiet",
            "--format",
            "requirements-txt",
            "-o",
            str(requirements),
        ],
        cwd=REPO,
    )
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    _run([*pip, "--require-hashes", "-r", str(requirements)])
    _run([*pip, "--no-deps", str(wheel)])
    yield venv / "bin"


def _environment(emulator: TelegramEmulator, **extra: str) -> dict[str, str]:
    """A clean environment: no PYTHONPATH, nothing of the checkout; the default database
    (data/ocop.db in the working folder)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PTB_TIMEDELTA": "true",
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.api_url,
        **extra,
    }


async def _start(
    bin_dir: Path, folder: Path, environment: dict[str, str]
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        str(bin_dir / "ocop-bot"),
        "run",
        cwd=folder,
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def _stop(process: asyncio.subprocess.Process) -> str:
    process.terminate()
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, output.decode()
    return output.decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _table_counts(database: Path) -> dict[str, int]:
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        names = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        return {n: connection.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


async def _register(emulator: TelegramEmulator, user: int) -> None:
    await _walk(emulator, user, None)
    # The receipt, in Vietnamese: the catalogs came with the package.
    texts = _texts(emulator, user)
    assert any("Mã hồ sơ: <b>CODE</b>" in text for text in texts), "\n".join(texts)


def _forged_update(user: int) -> dict[str, object]:
    return {
        "update_id": 990_001,
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": user, "type": "private", "first_name": "Kẻ lạ"},
            "from": {"id": user, "is_bot": False, "first_name": "Kẻ lạ"},
            "text": "/dangky",
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}],
        },
    }


async def test_the_installed_wheel_serves_by_polling_and_by_webhook(
    installed: Path, emulator: TelegramEmulator, tmp_path: Path
) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    process = await _start(installed, folder, _environment(emulator))
    try:
        await _register(emulator, 8_000_001)
    finally:
        log = await _stop(process)
    assert "serving Telegram @" in log and "by long polling" in log, log
    assert emulator.token not in log

    port = _free_port()
    hook = f"http://127.0.0.1:{port}/telegram/hook"
    webhook = _environment(
        emulator, WEBHOOK_URL=hook, WEBHOOK_PORT=str(port), WEBHOOK_SECRET=SECRET
    )
    process = await _start(installed, folder, webhook)
    try:
        await _register(emulator, 8_000_002)
        assert emulator.webhook is not None and emulator.webhook["url"] == hook
        database = folder / "data" / "ocop.db"
        before = _table_counts(database)
        async with aiohttp.ClientSession() as client:
            for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": SECRET[:-1] + "!"}):
                async with client.post(hook, json=_forged_update(8_000_003), headers=headers) as r:
                    assert r.status == 403
            async with client.get(f"http://127.0.0.1:{port}/healthz") as health:
                assert health.status == 200
        assert _table_counts(database) == before
        await emulator.wait_idle(timeout=30, quiet=1.0)
        assert emulator.messages_to(8_000_003) == []
    finally:
        log = await _stop(process)
    assert f"by webhook at {hook}" in log, log
    assert SECRET not in log and emulator.token not in log

    def command(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(installed / "ocop-bot"), *argv],
            cwd=folder,
            env=webhook,
            capture_output=True,
            text=True,
            timeout=120,
        )

    migrated = await asyncio.to_thread(command, "migrate")
    assert migrated.returncode == 0, migrated
    (folder / "chung-nhan.csv").write_text(
        "Tên sản phẩm;Người đại diện;Tên chủ thể;Loại hình chủ thể;Xã/phường;Địa chỉ;"
        "Số điện thoại;Hạng sao;Ngày cấp;Số quyết định\n"
        "Nước mắm Sa Huỳnh;Lê Văn An;HTX Sa Huỳnh;Hợp tác xã;Sa Huỳnh;Thôn Long Thạnh;"
        "0905111222;4;15/03/2024;12/QĐ-UBND\n",
        encoding="utf-8",
    )
    imported = await asyncio.to_thread(command, "import", "chung-nhan.csv")
    assert imported.returncode == 0 and "imported: 1" in imported.stdout, imported
    exported = await asyncio.to_thread(command, "export", "--year", "2026", "-o", "bang.xlsx")
    assert exported.returncode == 0 and "2 registrations" in exported.stdout, exported
    backup = await asyncio.to_thread(command, "backup", "--to", "saved")
    assert backup.returncode == 0, backup
    [saved] = (folder / "saved").glob("ocop-*.sqlite")
    assert _table_counts(saved)["registrations"] == 2
    checked = await asyncio.to_thread(command, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"Telegram webhook registered at {hook}" in checked.stdout


async def test_the_installed_wheel_serves_the_sandbox_from_an_empty_folder(
    installed: Path, tmp_path: Path
) -> None:
    """`ocop-bot sandbox` from the installed package: its page and script come with the wheel,
    and the bot answers in Vietnamese there."""
    bare = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/")}
    command = [str(installed / "ocop-bot")]
    with running(tmp_path, command=command, env=bare) as (address, _process):
        async with aiohttp.ClientSession(base_url=address) as client:
            async with client.get("/") as page:
                assert page.status == 200 and "Bản dùng thử" in await page.text()
            async with client.get("/static/app.js") as script:
                assert script.status == 200
            async with client.post("/api/chats/lan/text", json={"text": "/start"}) as sent:
                assert sent.status == 200
            async with client.get("/api/chats/lan/events") as events:
                async for line in events.content:
                    if line.startswith(b"data: ") and "Chương trình OCOP".encode() in line:
                        break
                else:
                    raise AssertionError("the event stream ended without the welcome")
