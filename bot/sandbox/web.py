"""The sandbox's web server: the chat page (one HTML page, one script, one stylesheet, served
from this package: no CDN, no build step), and the JSON routes the page calls::

    GET  /                                   the page (?lang=en for English)
    GET  /api/chats/{persona}                the chat as JSON (messages, buttons, keyboard)
    GET  /api/chats/{persona}/events         the same as Server-Sent Events, on every change
    POST /api/chats/{persona}/text           {"text": "..."}
    POST /api/chats/{persona}/press          {"message_id": 3, "data": "..."} (an inline button)
    POST /api/chats/{persona}/contact        share the persona's phone number
    POST /api/chats/{persona}/location       send a fixed point of the area
    POST /api/chats/{persona}/sample         send the sample certificate list as a file
    GET  /api/chats/{persona}/files/{id}     download a file the bot sent
    POST /api/reset                          start over from an empty database
"""

from __future__ import annotations

import asyncio
import html
import json
import mimetypes
import string
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.sandbox.personas import PERSONAS, Persona, persona
from bot.sandbox.sandbox import Sandbox
from bot.sandbox.texts import page_texts
from handlers.i18n import LANGUAGES, in_language

STATIC = Path(__file__).with_name("static")
# Seconds a persona's action waits for the bot to be up: a start or reset takes a few seconds;
# a machine many times slower than usual still gets there.
STARTING = 120.0
HEARTBEAT = 15.0  # seconds between SSE comments on a quiet chat, so proxies keep it open
SANDBOX = web.AppKey("sandbox", Sandbox)
JSON = dict[str, Any]


def _json_for_script(value: Any) -> str:
    """JSON safe inside <script>: no "</script>" can end it early."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


async def page(request: web.Request) -> web.Response:
    language = request.query.get("lang", "vi")
    with in_language(language if language in LANGUAGES else "vi"):
        texts = page_texts()
        people = [
            {
                "key": p.key,
                "name": p.name,
                "about": texts["persona." + p.key],
                "channel": p.channel,
                "role": p.role.value,
            }
            for p in PERSONAS
        ]
    template = string.Template((STATIC / "index.html").read_text(encoding="utf-8"))
    placeholders = {
        key.replace(".", "_").replace("-", "_"): html.escape(value) for key, value in texts.items()
    }
    body = template.substitute(
        placeholders,
        lang=language if language in LANGUAGES else "vi",
        config=_json_for_script({"texts": texts, "personas": people}),
    )
    return web.Response(text=body, content_type="text/html", charset="utf-8")


def _persona(request: web.Request) -> Persona:
    found = persona(request.match_info["persona"])
    if found is None:
        raise web.HTTPNotFound(text="no such persona")
    return found


async def chat(request: web.Request) -> web.Response:
    return web.json_response(request.app[SANDBOX].chat(_persona(request)))


async def events(request: web.Request) -> web.StreamResponse:
    """The persona's chat each time it changes (and a "reset" event after a reset)."""
    sandbox, who = request.app[SANDBOX], _persona(request)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    last, generation = "", sandbox.generation
    try:
        while not sandbox.stopping:
            if sandbox.generation != generation:
                generation, last = sandbox.generation, ""
                await response.write(b"event: reset\ndata: {}\n\n")
            snapshot = json.dumps(sandbox.chat(who), ensure_ascii=False)
            if snapshot != last:
                await response.write(f"event: chat\ndata: {snapshot}\n\n".encode())
                last = snapshot
            else:
                await response.write(b": quiet\n\n")
            await sandbox.changed(HEARTBEAT)
    except (ConnectionResetError, asyncio.CancelledError):
        pass  # the page went away, or the server is stopping
    return response


Action = Callable[[Sandbox, Persona, JSON], None]


def _without_body(act: Callable[[Sandbox, Persona], None]) -> Action:
    return lambda sandbox, who, _body: act(sandbox, who)


def _action(act: Action) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        sandbox, who = request.app[SANDBOX], _persona(request)
        body = await request.json() if request.can_read_body else {}
        # The page is served while the bot starts (or resets): what it sends waits for it.
        if not await sandbox.wait_ready(STARTING):
            return web.json_response({"ok": False, "description": "starting"}, status=503)
        try:
            act(sandbox, who, body if isinstance(body, dict) else {})
        except (AssertionError, KeyError, TypeError, ValueError) as error:
            return web.json_response({"ok": False, "description": str(error)}, status=400)
        return web.json_response({"ok": True})

    return handle


def _text(sandbox: Sandbox, who: Persona, body: JSON) -> None:
    text = body["text"]
    if not isinstance(text, str):
        raise TypeError("text must be a string")
    sandbox.say(who, text)


def _press(sandbox: Sandbox, who: Persona, body: JSON) -> None:
    sandbox.press(who, int(body["message_id"]), str(body["data"]))


async def download(request: web.Request) -> web.Response:
    sandbox, who = request.app[SANDBOX], _persona(request)
    found = sandbox.document(who, int(request.match_info["message_id"]))
    if found is None:
        raise web.HTTPNotFound(text="no such file")
    name, content = found
    return web.Response(
        body=content,
        content_type=mimetypes.guess_type(name)[0] or "application/octet-stream",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"},
    )


async def reset(request: web.Request) -> web.Response:
    await request.app[SANDBOX].reset()
    return web.json_response({"ok": True})


def build_app(sandbox: Sandbox) -> web.Application:
    app = web.Application()
    app[SANDBOX] = sandbox
    app.router.add_get("/", page)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/chats/{persona}", chat)
    app.router.add_get("/api/chats/{persona}/events", events)
    actions: dict[str, Action] = {
        "text": _text,
        "press": _press,
        "contact": _without_body(Sandbox.share_contact),
        "location": _without_body(Sandbox.share_location),
        "sample": _without_body(Sandbox.send_sample),
    }
    for name, act in actions.items():
        app.router.add_post(f"/api/chats/{{persona}}/{name}", _action(act))
    app.router.add_get("/api/chats/{persona}/files/{message_id:\\d+}", download)
    app.router.add_post("/api/reset", reset)
    return app
