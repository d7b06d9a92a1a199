"""The sandbox in real headless Chromium (Debian's `chromium`, driven by Playwright): a producer
registers by clicking and typing, the commune official accepts it, the admin imports the sample
certificates and downloads the export. Bad input gets the bot's usual answers, and nothing a
person types is ever shown as HTML.

Screenshots are saved under test-artifacts/sandbox-browser/ in the repository (see ARTIFACTS).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest

from tests import debian
from tests.sandbox_harness import running

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is missing (pip install .[test])"
)
expect = sync_api.expect

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "sandbox-browser"
CHROMIUM = "/usr/bin/chromium"
# A reply shows within a second or two idle; this bounds a hung bot, not the usual wait. The
# export and the import are long tasks, and a reply waits for its chat's one-a-second pace.
STEP_TIMEOUT_MS = 60_000
PHONE = {"width": 400, "height": 860}
HOSTILE = '<b>HTX</b> <script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


@pytest.fixture(scope="session")
def chromium() -> str:
    if why := debian.install(["chromium"], CHROMIUM):
        pytest.skip(f"no Chromium for the browser test: {why}")
    return CHROMIUM


@pytest.fixture
def page(chromium: str, tmp_path: Path) -> Iterator[sync_api.Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running(tmp_path) as (address, _process), sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        context = browser.new_context(viewport=PHONE, accept_downloads=True, locale="vi-VN")
        context.set_default_timeout(STEP_TIMEOUT_MS)
        expect.set_options(timeout=STEP_TIMEOUT_MS)
        page = context.new_page()
        page.goto(address)
        yield page
        context.close()
        browser.close()


def last_bot(page: sync_api.Page) -> sync_api.Locator:
    return page.locator(".msg.bot").last


def say(page: sync_api.Page, text: str) -> None:
    page.locator("#text").fill(text)
    page.locator("#send").click()


def tap(page: sync_api.Page, label: str) -> None:
    """An inline button of the newest message that has buttons."""
    page.locator(".msg.bot:has(.inline)").last.get_by_role("button", name=label).click()


def answered(page: sync_api.Page, text: str) -> None:
    expect(last_bot(page)).to_contain_text(text)


def switch_to(page: sync_api.Page, name: str, channel: str = "Telegram") -> None:
    label = name if channel == "Telegram" else f"{name} ({channel})"
    page.locator(".person").filter(has=page.get_by_text(label, exact=True)).click()
    expect(page.locator("#chat-about")).to_contain_text(f"{name} · {channel}")


def test_register_accept_and_export_in_a_browser(page: sync_api.Page) -> None:
    expect(page.locator(".banner")).to_contain_text("Bản dùng thử")
    switch_to(page, "Nguyễn Thị Lan")
    page.get_by_role("button", name="Bắt đầu").click()
    answered(page, "Chương trình OCOP")
    tap(page, "📝 Đăng ký sản phẩm mới")
    answered(page, "thông tin cá nhân")  # the personal-data notice comes first
    tap(page, "✅ Đồng ý")
    answered(page, "xã/phường nào")
    # The bot took the buttons off the message pressed: the page edits it in place.
    expect(page.locator(".msg.bot").first.locator(".inline")).to_have_count(0)
    expect(page.locator(".msg.bot").first).to_contain_text("Chương trình OCOP")
    say(page, "sa huynh")  # typed instead of tapped: that question's buttons go too
    answered(page, "Tên sản phẩm là gì?")
    old_question = page.locator(".msg.bot", has_text="xã/phường nào")
    expect(old_question.locator(".inline")).to_have_count(0)
    expect(last_bot(page)).to_contain_text("Tên sản phẩm là gì?")
    say(page, "")  # empty text
    answered(page, "gõ câu trả lời bằng chữ")
    say(page, "x" * 5000)  # too long: sent in two parts, as Telegram's apps do
    answered(page, "Quá dài")
    say(page, "Nước mắm cá cơm")
    tap(page, "Thực phẩm")
    answered(page, "hình thức nào")
    tap(page, "Hợp tác xã")
    say(page, HOSTILE)  # the producer's name, as text
    answered(page, "Người đại diện")
    say(page, "Nguyễn Thị Lan")
    say(page, "Thôn Long Thạnh 1, phường Sa Huỳnh")
    answered(page, "vị trí")
    page.locator("#keyboard").get_by_role("button", name="📍 Gửi vị trí của tôi").click()
    answered(page, "Số điện thoại")
    page.locator("#keyboard").get_by_role("button", name="📱 Gửi số điện thoại của tôi").click()
    tap(page, "4 sao")
    answered(page, "thương mại điện tử")
    tap(page, "Có")
    answered(page, "Kiểm tra lại hồ sơ đăng ký")
    summary = last_bot(page)
    expect(summary).to_contain_text(HOSTILE)  # shown as the producer typed it, as text
    assert page.locator(".messages script, .messages img").count() == 0
    assert page.evaluate("window.pwned") is None
    summary.evaluate("message => message.scrollIntoView({block: 'start'})")
    page.screenshot(path=ARTIFACTS / "producer-summary.png")
    summary.screenshot(path=ARTIFACTS / "producer-summary-message.png")
    tap(page, "Gửi hồ sơ")
    answered(page, "OCOP-2026-0001")

    switch_to(page, "Lê Văn Hùng")  # told of the new registration already, maybe: no Start
    say(page, "/choduyet")
    answered(page, "OCOP-2026-0001")
    tap(page, "✅ Tiếp nhận")
    expect(page.locator(".messages")).to_contain_text("OCOP-2026-0001: Đã tiếp nhận")

    switch_to(page, "Phạm Thị Mai")
    page.get_by_role("button", name="Nhập danh sách chứng nhận mẫu").click()
    answered(page, "Đã nhập")
    say(page, "/xuat")
    document = page.locator(".msg.bot a.doc").last
    expect(document).to_be_visible()
    page.screenshot(path=ARTIFACTS / "admin-export.png")
    with page.expect_download() as download_info:
        document.click()
    content = Path(download_info.value.path()).read_bytes()
    book = openpyxl.load_workbook(io.BytesIO(content))
    cells = [str(c) for sheet in book for row in sheet.iter_rows(values_only=True) for c in row]
    assert "Nước mắm cá cơm" in cells
    assert "Nguyễn Thị Lan" in cells


def test_the_zalo_view_and_reset_in_a_browser(page: sync_api.Page) -> None:
    switch_to(page, "Nguyễn Thị Lan", "Zalo")
    page.get_by_role("button", name="Bắt đầu").click()
    answered(page, "1. 📝 Đăng ký sản phẩm mới")  # a numbered menu, as plain text
    assert page.locator(".messages .inline").count() == 0  # Zalo has no buttons
    say(page, "1")
    answered(page, "thông tin cá nhân")  # the personal-data notice comes first
    say(page, "Đồng ý")
    answered(page, "xã/phường nào")
    page.screenshot(path=ARTIFACTS / "zalo-producer.png")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Làm lại từ đầu").click()
    expect(page.locator(".messages .msg")).to_have_count(0)
    expect(page.get_by_role("button", name="Bắt đầu")).to_be_visible()  # an empty chat again
