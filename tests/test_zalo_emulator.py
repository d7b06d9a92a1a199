"""The Zalo emulator answers like the Zalo Bot API, as seen through the bot's own client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from bot.channels.zalo_api import ZaloApiError, ZaloClient, ZaloNetworkError
from bot.emulator.zalo import ZaloEmulator
from tests.zalo_harness import zalo_emulator

__all__ = ["zalo_emulator"]  # fixtures


@pytest.fixture
async def client(zalo_emulator: ZaloEmulator) -> AsyncIterator[ZaloClient]:
    api = ZaloClient(zalo_emulator.token, zalo_emulator.api_url, timeout=5)
    await api.start()
    yield api
    await api.close()


async def test_get_updates_gives_one_update_per_call_then_408(
    client: ZaloClient, zalo_emulator: ZaloEmulator
) -> None:
    first = zalo_emulator.send_text("u1", "một")
    second = zalo_emulator.send_sticker("u1")
    assert await client.get_update(0) == first
    assert await client.get_update(0) == second
    assert await client.get_update(0) is None  # 408 "Request timeout": nothing came
    [(_, params), *_rest] = [call for call in zalo_emulator.calls if call[0] == "getUpdates"]
    assert params == {"timeout": "0"}  # the API wants the timeout as a string


async def test_messages_are_1_to_2000_characters_to_known_chats(
    client: ZaloClient, zalo_emulator: ZaloEmulator
) -> None:
    zalo_emulator.send_text("u1", "xin chào")
    message_id = await client.send_message("u1", "chào " * 400)
    assert message_id and zalo_emulator.texts_to("u1") == ["chào " * 400]
    for text in ("", "x" * 2001):
        with pytest.raises(ZaloApiError) as refused:
            await client.send_message("u1", text)
        assert refused.value.code == 400
    with pytest.raises(ZaloApiError, match="chat not found"):
        await client.send_message("stranger", "hello")
    zalo_emulator.blocked_chats.add("u1")
    with pytest.raises(ZaloApiError) as blocked:
        await client.send_message("u1", "hello")
    assert blocked.value.code == 403


async def test_a_webhook_needs_a_secret_and_excludes_polling(
    client: ZaloClient, zalo_emulator: ZaloEmulator
) -> None:
    with pytest.raises(ZaloApiError, match="secret_token"):
        await client.set_webhook("https://bot.example/zalo", "short")
    await client.set_webhook("https://bot.example/zalo", "mật-khẩu-đủ-dài")
    assert (await client.get_webhook_info())["url"] == "https://bot.example/zalo"
    with pytest.raises(ZaloApiError) as conflict:
        await client.get_update(0)
    assert conflict.value.code == 409
    await client.delete_webhook()
    assert await client.get_update(0) is None


async def test_a_wrong_token_and_a_missing_server(zalo_emulator: ZaloEmulator) -> None:
    wrong = ZaloClient("1:wrong-token", zalo_emulator.api_url)
    await wrong.start()
    with pytest.raises(ZaloApiError) as refused:
        await wrong.get_me()
    assert refused.value.code == 401 and "wrong-token" not in str(refused.value)
    await wrong.close()
    gone = ZaloClient("1:secret-token", "http://127.0.0.1:9/bot")  # nothing listens on port 9
    await gone.start()
    with pytest.raises(ZaloNetworkError) as unreachable:
        await gone.get_me()
    assert "secret-token" not in str(unreachable.value)
    await gone.close()


async def test_the_control_routes_act_as_a_user(zalo_emulator: ZaloEmulator) -> None:
    base = f"http://{zalo_emulator.host}:{zalo_emulator.port}/_emulator"
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/send_text", json={"user_id": "u9", "text": "menu"}) as sent:
            update = (await sent.json())["result"]
        assert update["message"]["text"] == "menu"
        async with http.get(f"{base}/messages", params={"chat_id": "u9"}) as listed:
            assert (await listed.json())["result"] == []
        async with http.get(f"{base}/nonsense") as wrong:
            assert wrong.status == 400
    assert zalo_emulator.pending_updates == 1


async def test_photos_and_chat_actions_are_recorded(
    client: ZaloClient, zalo_emulator: ZaloEmulator
) -> None:
    zalo_emulator.send_image("u2")
    await client.send_chat_action("u2")
    assert zalo_emulator.actions == [{"chat_id": "u2", "action": "typing"}]
    await client.call("sendPhoto", {"chat_id": "u2", "photo": "https://x.invalid/a.jpg"})
    [photo] = zalo_emulator.messages_to("u2")
    assert photo["method"] == "sendPhoto" and photo["photo"] == "https://x.invalid/a.jpg"
    with pytest.raises(ZaloApiError, match="photo must be a URL"):
        await client.call("sendPhoto", {"chat_id": "u2", "photo": "a.jpg"})


async def test_the_emulator_is_as_strict_as_the_published_bot_api(
    client: ZaloClient, zalo_emulator: ZaloEmulator
) -> None:
    """setWebhook takes an HTTPS URL only; `typing` is the one chat action on offer."""
    for url in ("http://bot.example/zalo", "https://", "bot.example/zalo"):
        with pytest.raises(ZaloApiError, match="HTTPS") as refused:
            await client.set_webhook(url, "mật-khẩu-đủ-dài")
        assert refused.value.code == 400
    assert zalo_emulator.webhook is None
    zalo_emulator.send_text("u3", "xin chào")
    with pytest.raises(ZaloApiError, match="unknown action"):
        await client.call("sendChatAction", {"chat_id": "u3", "action": "upload_photo"})
    await client.send_chat_action("u3", "typing")
    assert zalo_emulator.actions == [{"chat_id": "u3", "action": "typing"}]
