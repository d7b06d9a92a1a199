"""Routes, forms and menus are declared in one table per feature and built by a factory: a
newcomer's command and form appear everywhere by declaring them once, and importing the code
builds nothing (issue 11, items 3 and 5)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.emulator.telegram import TelegramEmulator
from bot.settings import Settings
from handlers import menu, router
from handlers.context import Context
from handlers.engine import Answers, Engine, Flow, Step
from handlers.events import Outcome, Reply
from handlers.i18n import N_, _
from handlers.registration import Field
from handlers.routes import Call, Command, Entry, Form
from models.domain import Role
from tests.harness import BotUnderTest, Producer

# --- a newcomer's feature: one question, one field-table row, one command --------------------

FAVOURITE = Step(
    "colour",
    N_("Which colour do you like best?"),
    label=N_("Favourite colour"),
    parse_text=lambda text, _answers, _ctx: {"colour": text.strip()},
)
FIELDS = (Field("colour", ("colour",), lambda a: {"colour": a["colour"]}, lambda v: v["colour"]),)


async def _done(answers: Answers, _ctx: Context) -> Outcome:
    stored: dict[str, object] = {}
    for row in FIELDS:
        stored.update(row.to_input(answers))
    return Outcome([Reply(_("Noted: {colour}.").format(colour=stored["colour"]))])


COLOURS = Engine(
    Flow(
        "colours",
        (FAVOURITE,),
        summary_title=N_("Your favourite colour"),
        submit_label=N_("✅ Save"),
        complete=_done,
    ),
    menu=lambda ctx: menu.main_menu(ctx.user.role),
)


async def _colours(call: Call) -> Outcome:
    return Outcome(COLOURS.begin(call.conversation, call.ctx, {}))


def colour_routes() -> tuple[Entry, ...]:
    return (
        Command(
            "colours",
            _colours,
            ("mausac",),
            menu=N_("Favourite colour"),
            help=N_("/colours (or /mausac): tell us your favourite colour"),
        ),
        Form(COLOURS),
    )


async def test_a_newcomers_command_and_form_appear_in_the_menu_help_form_and_summary(
    settings: Settings, engine: AsyncEngine, emulator: TelegramEmulator
) -> None:
    bot = BotUnderTest(settings, engine, emulator)
    routes = router.build_routes()
    for entry in colour_routes():
        routes.add(entry)
    bot.services = dataclasses.replace(bot.services, routes=routes)
    await bot.start()
    try:
        # The menu everyone gets (Vietnamese by default), named by its Vietnamese alias.
        assert {"command": "mausac", "description": "Favourite colour"} in emulator.commands
        assert emulator.commands[0]["command"] == "dangky"  # the shipped commands stay first
        producer = Producer(bot, user_id=7101)
        await producer.say("/help")
        assert "/colours (or /mausac): tell us your favourite colour" in producer.text
        assert "/dangky" in producer.text  # the shipped lines are still there
        await producer.say("/mausac")
        assert "Which colour do you like best?" in producer.text
        await producer.say("Xanh lá")
        assert "Your favourite colour" in producer.text
        assert "Favourite colour" in producer.text and "Xanh lá" in producer.text
        await producer.tap("✅ Save")
        assert "Noted: Xanh lá." in producer.text
    finally:
        await bot.stop()


def test_the_shipped_help_and_menus_list_each_command_once_from_its_route() -> None:
    routes = router.build_routes()
    for role in Role:
        for language in ("vi", "en"):
            names = [entry["command"] for entry in routes.menu(role, language)]
            assert len(names) == len(set(names))
            assert all(name in routes.commands for name in names)
    producer, official, admin = (routes.menu(role, "en") for role in Role)
    assert [e["command"] for e in producer][:3] == ["register", "status", "cancel"]
    assert "pending" in [e["command"] for e in official]
    assert "pending" not in [e["command"] for e in producer]
    assert "template" in [e["command"] for e in admin]
    assert "template" not in [e["command"] for e in official]


# --- importing builds nothing -------------------------------------------------------------------

_IMPORT_EVERYTHING = r"""
import importlib, json, pkgutil, sys

PACKAGES = ("handlers", "bot", "models")


def names():
    for package in PACKAGES:
        module = importlib.import_module(package)
        yield package
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            yield info.name


def containers():
    # The size of every module-level dict, list and set of the project's modules.
    found = {}
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] in PACKAGES:
            for attr, value in list(vars(module).items()):
                if isinstance(value, (dict, list, set)) and not attr.startswith("__"):
                    found[f"{name}.{attr}"] = len(value)
    return found


mutated, built = [], []
for name in names():
    before = containers()
    importlib.import_module(name)
    after = containers()
    mutated += [f"{key} ({before[key]} -> {after[key]}) by {name}"
                for key in before if after.get(key) != before[key]]

from handlers.engine import Engine
from handlers.routes import Route, Routes

for name, module in list(sys.modules.items()):
    if name.split(".")[0] in PACKAGES:
        for attr, value in vars(module).items():
            values = list(value.values()) if isinstance(value, dict) else [value]
            if any(isinstance(v, (Routes, Route)) for v in values) or (
                isinstance(value, dict) and any(isinstance(v, Engine) for v in values)
            ):
                built.append(f"{name}.{attr}")
print(json.dumps({"mutated": mutated, "built": built, "count": len(list(names()))}))
"""


def test_importing_every_module_registers_and_builds_nothing() -> None:
    """Every module of handlers, bot and models imported one after another, in a fresh
    interpreter: none changes another's tables, and no route table or flow registry exists
    until the factory builds one."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERYTHING],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["count"] > 80  # the walk did reach the modules
    assert report["mutated"] == []
    assert report["built"] == []
