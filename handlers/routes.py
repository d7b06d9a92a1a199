"""The table of commands, button prefixes and forms, each declared with the role it requires.

Each feature declares its entries in one table (`routes()` in its module: `Command`, `Button`,
`Upload`, `Form`); `build_routes` collects the tables into a `Routes`, called by the router's
factory, so importing a module registers nothing. A command is declared once: its name, aliases,
role, the description in Telegram's command menu and its line of /help all come from its entry.

Access is checked here, where a route is declared, never inside a handler body: a user below
the route's role gets a polite refusal and the attempt goes to the audit log.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from handlers.context import Context
from handlers.engine import Engine
from handlers.events import Event, Outcome, Reply
from handlers.i18n import _, in_language
from models.audit import record
from models.conversations import Conversation
from models.domain import Role

RANK = {Role.PRODUCER: 0, Role.OFFICIAL: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class Call:
    """One routed event: who, where in a conversation, and the arguments after the name."""

    ctx: Context
    conversation: Conversation
    event: Event
    args: tuple[str, ...] = ()


Handler = Callable[[Call], Awaitable[Outcome]]


@dataclass(frozen=True)
class Route:
    name: str
    handler: Handler
    role: Role = Role.PRODUCER
    # For input anyone may send (a file): what users below `role` get instead of a refusal.
    otherwise: Handler | None = None


@dataclass(frozen=True)
class Command:
    """A slash command (also typed as a word without the slash). `menu`: its description in
    Telegram's command menu, where it is named `name` in English and by its first alias (the
    Vietnamese name) otherwise; `help`: its line of /help. Both are catalog msgids (N_)."""

    name: str
    handler: Handler
    aliases: tuple[str, ...] = ()
    role: Role = Role.PRODUCER
    menu: str | None = None
    help: str | None = None


@dataclass(frozen=True)
class Button:
    """Buttons whose callback data is `prefix:arg:arg…`."""

    prefix: str
    handler: Handler
    role: Role = Role.PRODUCER


@dataclass(frozen=True)
class Upload:
    """Photos and files sent outside a form; users below `role` get `otherwise`."""

    handler: Handler
    role: Role
    otherwise: Handler
    help: str | None = None


@dataclass(frozen=True)
class Form:
    """A multi-step form: events of a conversation in it go to its engine."""

    engine: Engine


Entry = Command | Button | Upload | Form
# Who sees what, in the order the command menu lists it (and /help, producer's part first).
MENU_ROLES = {
    Role.PRODUCER: (Role.PRODUCER,),
    Role.OFFICIAL: (Role.OFFICIAL, Role.PRODUCER),
    Role.ADMIN: (Role.OFFICIAL, Role.ADMIN, Role.PRODUCER),
}
HELP_ROLES = {
    role: tuple(sorted(roles, key=RANK.__getitem__)) for role, roles in MENU_ROLES.items()
}


def refusal(role: Role) -> Reply:
    if role is Role.ADMIN:
        return Reply(_("Sorry, only the bot's administrators can do this."))
    return Reply(_("Sorry, this is only for OCOP officials."))


@dataclass
class Routes:
    commands: dict[str, Route] = field(default_factory=dict)
    buttons: dict[str, Route] = field(default_factory=dict)
    documents: Route | None = None
    flows: dict[str, Engine] = field(default_factory=dict)
    declared: list[Command | Upload] = field(default_factory=list)  # in declaration order

    def add(self, entry: Entry) -> None:
        if isinstance(entry, Command):
            self._command(entry.name, entry.handler, *entry.aliases, role=entry.role)
            self.declared.append(entry)
        elif isinstance(entry, Button):
            self.button(entry.prefix, entry.handler, entry.role)
        elif isinstance(entry, Upload):
            self.document(entry.handler, entry.role, entry.otherwise)
            self.declared.append(entry)
        else:
            if entry.engine.flow.name in self.flows:
                raise ValueError(f"flow {entry.engine.flow.name!r} registered twice")
            self.flows[entry.engine.flow.name] = entry.engine

    def menu(self, role: Role, language: str) -> list[dict[str, str]]:
        """MENU_COMMANDS for Telegram's setMyCommands: what `role` may send, in `language`."""
        with in_language(language):
            return [
                {
                    "command": entry.name
                    if language == "en" or not entry.aliases
                    else entry.aliases[0],
                    "description": _(entry.menu),
                }
                for group in MENU_ROLES[role]
                for entry in self.declared
                if isinstance(entry, Command) and entry.role is group and entry.menu
            ]

    def help_lines(self, role: Role) -> list[list[str]]:
        """The lines of /help for `role`, one list per role it holds (the producer's first),
        in the current language."""
        return [
            [
                html.escape(_(entry.help), quote=False)
                for entry in self.declared
                # Anyone may send a file: an upload's line is in everyone's part.
                if (entry.role if isinstance(entry, Command) else Role.PRODUCER) is group
                and entry.help
            ]
            for group in HELP_ROLES[role]
        ]

    def _command(self, name: str, handler: Handler, *aliases: str, role: Role) -> None:
        route = Route(name, handler, role)
        for key in (name, *aliases):
            if key in self.commands:
                raise ValueError(f"command {key!r} registered twice")
            self.commands[key] = route

    def button(self, prefix: str, handler: Handler, role: Role = Role.PRODUCER) -> None:
        """Buttons whose callback data is `prefix:arg:arg…`."""
        if prefix in self.buttons:
            raise ValueError(f"button prefix {prefix!r} registered twice")
        self.buttons[prefix] = Route(prefix, handler, role)

    def document(self, handler: Handler, role: Role, otherwise: Handler) -> None:
        self.documents = Route("document", handler, role, otherwise)


def build_routes(tables: Iterable[Iterable[Entry]]) -> Routes:
    """One `Routes` from the features' tables; a name declared twice is an error."""
    routes = Routes()
    for table in tables:
        for entry in table:
            routes.add(entry)
    return routes


async def dispatch(route: Route, call: Call) -> Outcome:
    """Run a route if the user's role allows it; privileged use is audited either way, and so
    is a request the handler itself refused (out of the official's scope)."""
    user = call.ctx.user
    detail = " ".join((route.name, *call.args))
    if RANK[user.role] < RANK[route.role]:
        if route.otherwise is not None:
            return await route.otherwise(call)
        record(call.ctx.session, user, route.name, detail, allowed=False)
        return Outcome([refusal(route.role)], toast=refusal(route.role).text)
    outcome = await route.handler(call)
    if route.role is not Role.PRODUCER or outcome.refused is not None:
        if outcome.refused is not None:
            detail = f"{detail} ({outcome.refused})"
        record(call.ctx.session, user, route.name, detail, allowed=outcome.refused is None)
    return outcome
