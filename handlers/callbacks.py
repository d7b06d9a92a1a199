"""Button data: one small class per prefix, encoded and decoded here only, within Telegram's
64-byte limit.

The wire format is `prefix:part:part…` (a form's buttons: `version:action[:argument]`), the same
strings the bot has always sent, so buttons already on people's screens keep working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import ClassVar, Self

from models.domain import parse_number

# Telegram refuses a message whose callback_data is longer than this many bytes (UTF-8).
LIMIT = 64
SEPARATOR = ":"


class CallbackTooLong(ValueError):
    """Button data over the limit: a programming error, found when the button is built."""


def checked(data: str) -> str:
    """`data` itself; raises when it does not fit in a button."""
    if len(data.encode()) > LIMIT:
        raise CallbackTooLong(f"{len(data.encode())} bytes > {LIMIT}: {data!r}")
    return data


def pack(prefix: str, *parts: object) -> str:
    """`prefix:part:part…`, checked against the limit."""
    return checked(SEPARATOR.join((prefix, *(str(part) for part in parts))))


def unpack(data: str) -> tuple[str, tuple[str, ...]]:
    """The prefix (the route) and the parts after it."""
    prefix, *parts = data.split(SEPARATOR)
    return prefix, tuple(parts)


@dataclass(frozen=True)
class Callback:
    """Button data of one prefix; the fields in order are its parts. An `int` field is a
    database id; a last field typed `tuple[str, ...]` takes all remaining parts."""

    prefix: ClassVar[str]

    def encode(self) -> str:
        parts: list[object] = []
        for each in fields(self):
            value = getattr(self, each.name)
            parts.extend(value if isinstance(value, tuple) else (value,))
        return pack(self.prefix, *parts)

    @classmethod
    def decode(cls, data: str) -> Self | None:
        """The button, or None when `data` is another prefix's or malformed."""
        prefix, parts = unpack(data)
        return cls.from_parts(parts) if prefix == cls.prefix else None

    @classmethod
    def from_parts(cls, parts: Sequence[str]) -> Self | None:
        """The button from the parts after its prefix (what a route receives)."""
        declared = fields(cls)
        rest = bool(declared) and str(declared[-1].type).startswith("tuple")
        fixed = declared[:-1] if rest else declared
        if len(parts) < len(fixed) or (not rest and len(parts) != len(fixed)):
            return None
        values: list[object] = []
        for each, part in zip(fixed, parts, strict=False):
            if each.type == "int":
                number = parse_number(part)
                if number is None:
                    return None
                values.append(number)
            else:
                values.append(part)
        if rest:
            values.append(tuple(parts[len(fixed) :]))
        return cls(*values)


@dataclass(frozen=True)
class FlowButton:
    """A button of a form's question or summary: the conversation's version when it was shown
    (an older one is refused), an action (b back, x cancel, xy/xn cancel confirmed or not, ok
    send, e edit a field, s skip, o an option) and its argument (the field, the option)."""

    version: int
    action: str
    argument: str | None = None

    def encode(self) -> str:
        tail = () if self.argument is None else (self.argument,)
        return checked(SEPARATOR.join((str(self.version), self.action, *tail)))

    @classmethod
    def decode(cls, data: str) -> FlowButton | None:
        version, _sep, rest = data.partition(SEPARATOR)
        number = parse_number(version)
        if number is None:
            return None
        action, sep, argument = rest.partition(SEPARATOR)
        return cls(number, action, argument if sep else None)


@dataclass(frozen=True)
class MenuButton(Callback):
    """The main menu: new, reeval, reg, status, help, lang."""

    prefix = "m"
    action: str


@dataclass(frozen=True)
class LanguageButton(Callback):
    prefix = "lang"
    language: str


@dataclass(frozen=True)
class EditReturned(Callback):
    """A producer reopens a registration returned to them, or corrects one."""

    prefix = "pe"
    registration_id: int


@dataclass(frozen=True)
class ReviewList(Callback):
    prefix = "rvl"


@dataclass(frozen=True)
class ReviewShow(Callback):
    prefix = "rvs"
    registration_id: int


@dataclass(frozen=True)
class ReviewDecision(Callback):
    """acc, ret, rej, cert, fail, defer."""

    prefix = "rv"
    action: str
    registration_id: int


@dataclass(frozen=True)
class CorrectField(Callback):
    prefix = "rf"
    registration_id: int


@dataclass(frozen=True)
class Renew(Callback):
    """ "Register re-evaluation" under a reminder."""

    prefix = "rr"
    certificate_id: int


@dataclass(frozen=True)
class DossierButton(Callback):
    """The producer's papers: l show, c by code, r choose, i item, x list files, d delete,
    f form; `args` are the action's (ids, an item key)."""

    prefix = "dz"
    action: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class DossierOfficial(Callback):
    """An official's papers: z download, a ask, t toggle, n return asking."""

    prefix = "dzo"
    action: str
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConsentButton(Callback):
    """ "I agree" (y, with the button to run next as `resume`) or "I do not agree" (n)."""

    prefix = "cs"
    answer: str
    resume: tuple[str, ...] = ()

    @classmethod
    def agree(cls, resume: str) -> ConsentButton:
        prefix, parts = unpack(resume)
        return cls("y", (prefix, *parts))


@dataclass(frozen=True)
class DeleteData(Callback):
    """ask, yes, no."""

    prefix = "dd"
    answer: str
