"""The `ocop-bot` command as an operator uses it."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import sqlite3
from pathlib import Path

import httpx
import openpyxl
import pytest

from bench.chaos import start_ocop_bot, stop_ocop_bot
from bot.cli import main
from bot.emulator import TelegramEmulator
from models.db import create_engine, create_sessionmaker
from tests import factories
from tests.sandbox_harness import running


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--help"], ["run", "--help"], ["migrate", "--help"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "apply pending migrations" in out
    assert "DATABASE_URL" in out


def test_run_without_a_token_says_how_to_get_one_and_starts_the_sandbox(tmp_path: Path) -> None:
    with running(tmp_path, ("run",)) as (address, _process):  # no .env in tmp_path
        assert httpx.get(address, timeout=60).status_code == 200
    assert "@BotFather" in (tmp_path / "sandbox.log").read_text()


def test_migrate_creates_the_schema(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/fresh/ocop.db")
    assert main(["migrate"]) == 0
    with sqlite3.connect(tmp_path / "fresh" / "ocop.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"registrations", "conversations", "processed_updates", "certificates"} <= tables


async def test_ocop_bot_run_serves_a_conversation(
    emulator: TelegramEmulator, tmp_path: Path
) -> None:
    """The installed entry point: migrates a fresh database, polls, answers, stops on SIGTERM."""
    environment = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": emulator.token,
        "TELEGRAM_API_URL": emulator.api_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/data/ocop.db",
    }
    process = await start_ocop_bot(tmp_path, environment)
    try:
        emulator.send_text(4001, "/start")
        [welcome] = await emulator.wait_for_messages(4001, 1, timeout=60)
        assert "Chương trình OCOP" in welcome["text"]
        emulator.press_button(4001, "Đăng ký sản phẩm mới")
        messages = await emulator.wait_for_messages(4001, 2, timeout=30)
        assert "thông tin cá nhân" in messages[1]["text"]  # the consent notice comes first
        emulator.press_button(4001, "Đồng ý")
        messages = await emulator.wait_for_messages(4001, 4, timeout=30)
        assert "xã/phường nào" in messages[3]["text"]
    finally:
        log = await stop_ocop_bot(process)
    assert process.returncode == 0, log
    assert emulator.token not in log  # httpx would log request URLs, which contain the token


def test_import_then_export_from_the_command_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An admin's first day: load last year's certificate list, then print the year's table."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/ocop.db")
    listing = tmp_path / "chung-nhan.csv"
    listing.write_text(
        "Tên sản phẩm;Người đại diện;Tên chủ thể;Loại hình chủ thể;Xã/phường;Địa chỉ;"
        "Số điện thoại;Hạng sao;Ngày cấp;Số quyết định\n"
        "Nước mắm Sa Huỳnh;Lê Văn An;HTX Sa Huỳnh;Hợp tác xã;Sa Huỳnh;Thôn Long Thạnh;"
        "0905111222;4;15/03/2024;12/QĐ-UBND\n"
        "Tỏi;Phạm Thị Bình;;Hộ kinh doanh;Hà Nội;Thôn 1;;3;01/01/2024;\n",
        encoding="utf-8",
    )
    assert main(["import", str(listing)]) == 3  # some rows were rejected
    out = capsys.readouterr().out
    assert "imported: 1" in out and "row 3:" in out and "Hà Nội" in out

    output = tmp_path / "bang.xlsx"
    assert main(["export", "--year", "2026", "-o", str(output)]) == 0
    assert "0 registrations written" in capsys.readouterr().out
    sheet = openpyxl.load_workbook(output).worksheets[0]
    assert sheet["A5"].value == "Đăng ký sản phẩm thực hiện Chương trình OCOP năm 2026"


async def _one_registration(database_url: str, at: dt.datetime) -> None:
    engine = create_engine(database_url)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            producer = await factories.user(session)
            owner = await factories.subject(session, "HTX Nước mắm Sa Huỳnh")
            item = await factories.product(session, owner, "Nước mắm", "21478")
            factories.registration(session, producer, item, owner, at=at)
    finally:
        await engine.dispose()


def test_the_export_follows_the_time_zone_and_letterhead_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A deployment outside Vietnam's time zone (OCOP_TIMEZONE) gets its own wall-clock times in
    the `ocop-bot export` file, as in /xuat; the office's place heads the date line."""
    monkeypatch.chdir(tmp_path)
    database_url = f"sqlite+aiosqlite:///{tmp_path}/ocop.db"
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("OCOP_TIMEZONE", "Asia/Tokyo")  # UTC+9, two hours ahead of Vietnam
    monkeypatch.setenv("OCOP_OFFICE_PLACE", "Đức Phổ")
    assert main(["migrate"]) == 0
    asyncio.run(_one_registration(database_url, dt.datetime(2026, 3, 1, 17, 30, tzinfo=dt.UTC)))
    output = tmp_path / "bang.xlsx"
    assert main(["export", "--year", "2026", "-o", str(output)]) == 0
    assert "1 registrations written" in capsys.readouterr().out
    book = openpyxl.load_workbook(output)
    details = book.worksheets[1]
    header = [cell.value for cell in details[1]]
    row = dict(zip(header, next(details.iter_rows(min_row=2, values_only=True)), strict=True))
    assert row["Thời điểm nộp"] == dt.datetime(2026, 3, 2, 2, 30)  # not 00:30, Vietnam's
    texts = {c.value for r in book.worksheets[0].iter_rows() for c in r if isinstance(c.value, str)}
    assert any(text.startswith("Đức Phổ, ngày") for text in texts)
