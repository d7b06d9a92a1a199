"""The table of commands and button prefixes, each registered with the role it requires.

Access is checked here, where a route is registered, never inside a handler body: a user below
the route's role gets a polite refusal and the attempt goes to the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from handlers.context import Context
from handlers.events import Event, Outcome, Reply
from handlers.i18n import _
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


def refusal(role: Role) -> Reply:
    if role is Role.ADMIN:
        return Reply(_("Sorry, only the bot's administrators can do this."))
    return Reply(_("Sorry, this is only for OCOP officials."))


@dataclass
class Routes:
    commands: dict[str, Route] = field(default_factory=dict)
    buttons: dict[str, Route] = field(default_factory=dict)
    documents: Route | None = None

    def command(
        self, name: str, handler: Handler, *aliases: str, role: Role = Role.PRODUCER
    ) -> None:
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
