"""Fault injection and Telegram's flood limits for the emulator, and the records to verify both.

``Faults`` makes message sends (sendMessage, sendDocument, sendPhoto) fail the ways the real API
and network do; ``Limits`` enforces Telegram's flood limits the way the real server does (both
off by default). ``DeliveryChecks``, a base of ``TelegramEmulator``, decides each send's fate
and records successful sends cheaply (a benchmark pushes thousands a second through it), so a
test can check afterwards that the bot respected the limits::

    emulator.faults = Faults(rate_429=0.1, blocked_chats={42}, seed=1)
    emulator.limits = Limits(overall_per_second=30, per_chat_interval=1.0, group_per_minute=20)
    ...
    assert emulator.max_in_window(1.0) <= 30 and emulator.throttled == 0
    assert (emulator.min_interval_per_chat() or 1.0) >= 1.0
"""

from __future__ import annotations

import math
import random
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bot.emulator.wire import JSON


@dataclass
class Faults:
    """Failures injected into message sends; a failed send is not recorded in ``sent``.

    Chat faults come first and always apply: ``blocked_chats`` get 403 "Forbidden: bot was
    blocked by the user", ``bad_request_chats`` 400 "Bad Request: chat not found". Otherwise one
    random draw per send (from ``random.Random(seed)``: the k-th send's fate depends only on
    ``seed`` and k) picks at most one of: a timeout (``rate_timeout``: the request is held
    unanswered for ``timeout_seconds``, then answered 502 "Bad Gateway" if the client still
    waits), 500 "Internal Server Error" (``rate_500``), 429 "Too Many Requests: retry after N"
    with ``parameters.retry_after`` = ``retry_after`` (``rate_429``). ``emulator.injected``
    counts them by kind: "blocked", "bad_request", "timeout", "500", "429".
    """

    rate_429: float = 0.0
    retry_after: int = 1
    rate_500: float = 0.0
    rate_timeout: float = 0.0
    timeout_seconds: float = 30.0
    blocked_chats: set[int] = field(default_factory=set)
    bad_request_chats: set[int] = field(default_factory=set)
    seed: int | None = None

    def __post_init__(self) -> None:
        rates = (self.rate_429, self.rate_500, self.rate_timeout)
        if any(not 0.0 <= rate <= 1.0 for rate in rates) or sum(rates) > 1.0:
            raise ValueError(f"fault rates must be within 0..1 and add up to at most 1: {rates}")
        if self.retry_after < 1:  # Telegram never says 0, and PTB would not raise RetryAfter
            raise ValueError(f"retry_after must be at least 1 second, not {self.retry_after}")
        if self.timeout_seconds < 0:
            raise ValueError(f"timeout_seconds must not be negative: {self.timeout_seconds}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Faults:
        """Build from a JSON object (chat sets as lists), rejecting unknown keys."""
        values = _known_fields(cls, data)
        for name in ("blocked_chats", "bad_request_chats"):
            if name in values:
                values[name] = {int(chat_id) for chat_id in values[name]}
        return cls(**values)

    def to_json(self) -> JSON:
        data = asdict(self)
        for name in ("blocked_chats", "bad_request_chats"):
            data[name] = sorted(data[name])
        return data


@dataclass
class Limits:
    """Telegram's flood limits; a send over one is answered 429 with ``retry_after``.

    ``overall_per_second``: at most this many successful sends in any 1-second sliding window;
    ``per_chat_interval``: seconds between two sends to the same private chat (positive id);
    ``group_per_minute``: sends to one group (negative id) in any 60-second window.
    ``None`` turns a limit off. ``emulator.throttled`` counts the 429s they produce.
    """

    overall_per_second: float | None = None
    per_chat_interval: float | None = None
    group_per_minute: int | None = None

    def __post_init__(self) -> None:
        if self.overall_per_second is not None and self.overall_per_second < 1:
            raise ValueError(f"overall_per_second must be at least 1: {self.overall_per_second}")
        if self.per_chat_interval is not None and self.per_chat_interval < 0:
            raise ValueError(f"per_chat_interval must not be negative: {self.per_chat_interval}")
        if self.group_per_minute is not None and self.group_per_minute < 1:
            raise ValueError(f"group_per_minute must be at least 1: {self.group_per_minute}")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        """Build from a JSON object, rejecting unknown keys."""
        return cls(**_known_fields(cls, data))

    def to_json(self) -> JSON:
        return asdict(self)


def _known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValueError(f"{cls.__name__} must be a JSON object, not {data!r}")
    known = {f.name for f in fields(cls)}
    if unknown := set(data) - known:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
    return dict(data)


@dataclass(frozen=True)
class Refusal:
    """How the emulator answers a send it does not accept."""

    code: int
    description: str
    retry_after: int | None = None
    hold: float | None = None  # seconds to hold the request unanswered first (timeout fault)

    @property
    def parameters(self) -> JSON | None:
        return None if self.retry_after is None else {"retry_after": self.retry_after}


def _too_many(retry_after: int) -> Refusal:
    return Refusal(429, f"Too Many Requests: retry after {retry_after}", retry_after)


def _prune(window: deque[float], now: float, span: float) -> deque[float]:
    while window and now - window[0] >= span:
        window.popleft()
    return window


def _wait_in(window: deque[float], allowed: float, span: float, now: float) -> float:
    """Seconds until one more send fits in ``window`` (pruned) under ``allowed`` per ``span``."""
    excess = len(window) - math.floor(allowed) + 1
    return 0.0 if excess <= 0 else window[excess - 1] + span - now


class DeliveryChecks:
    """Fault and limit decisions for sends, counters of refusals, times of accepted sends."""

    def __init__(self) -> None:
        self.faults = Faults()
        self.limits = Limits()
        self.throttled = 0  # 429s produced by `limits`
        self.injected: Counter[str] = Counter()  # faults injected by `faults`, by kind
        self.failures: list[tuple[str, int, JSON]] = []  # (method, error_code, params)
        self._rng = random.Random()
        self._rng_for: tuple[Faults, int | None] | None = None
        self._times: list[float] = []  # every accepted send, in order
        self._chat_times: dict[int, list[float]] = {}
        self._min_gap: float | None = None
        self._window: deque[float] = deque()  # accepted sends of the last second
        self._group_windows: dict[int, deque[float]] = {}  # a group's sends of the last minute

    def delivery_times(self, chat_id: int) -> list[float]:
        """``time.monotonic()`` of each successful send to ``chat_id``, when it was accepted."""
        return list(self._chat_times.get(chat_id, ()))

    def min_interval_per_chat(self) -> float | None:
        """Smallest gap between two successful sends to one chat, over all chats (None: none)."""
        return self._min_gap

    def send_span(self) -> float:
        """Seconds between the first and the last successful send (0 with fewer than two)."""
        return self._times[-1] - self._times[0] if len(self._times) > 1 else 0.0

    def max_in_window(self, seconds: float = 1.0) -> int:
        """Most successful sends within any window of ``seconds`` (half-open, like the limit)."""
        if seconds <= 0:
            raise ValueError(f"the window must be positive, not {seconds}")
        best, start, times = 0, 0, self._times
        for end, moment in enumerate(times):
            while moment - times[start] >= seconds:
                start += 1
            best = max(best, end - start + 1)
        return best

    def _refusal(self, chat_id: int | None, now: float) -> Refusal | None:
        """Why a send to ``chat_id`` is refused at ``now`` (faults first, then limits), or None."""
        return self._injected_fault(chat_id) or self._throttle(chat_id, now)

    def _injected_fault(self, chat_id: int | None) -> Refusal | None:
        faults = self.faults
        owner = self._rng_for
        if owner is None or owner[0] is not faults or owner[1] != faults.seed:  # new or reseeded
            self._rng, self._rng_for = random.Random(faults.seed), (faults, faults.seed)
        draw = self._rng.random()  # drawn for every send, so the k-th send's fate is fixed
        if chat_id in faults.blocked_chats:
            kind, refusal = "blocked", Refusal(403, "Forbidden: bot was blocked by the user")
        elif chat_id in faults.bad_request_chats:
            kind, refusal = "bad_request", Refusal(400, "Bad Request: chat not found")
        elif draw < faults.rate_timeout:
            kind, refusal = "timeout", Refusal(502, "Bad Gateway", hold=faults.timeout_seconds)
        elif draw - faults.rate_timeout < faults.rate_500:
            kind, refusal = "500", Refusal(500, "Internal Server Error")
        elif draw - faults.rate_timeout - faults.rate_500 < faults.rate_429:
            kind, refusal = "429", _too_many(faults.retry_after)
        else:
            return None
        self.injected[kind] += 1
        return refusal

    def _throttle(self, chat_id: int | None, now: float) -> Refusal | None:
        limits, wait = self.limits, 0.0
        if limits.overall_per_second is not None:
            overall = _prune(self._window, now, 1.0)
            wait = _wait_in(overall, limits.overall_per_second, 1.0, now)
        if chat_id is not None and chat_id > 0 and limits.per_chat_interval is not None:
            if times := self._chat_times.get(chat_id):
                wait = max(wait, times[-1] + limits.per_chat_interval - now)
        if chat_id is not None and chat_id < 0 and limits.group_per_minute is not None:
            if group := self._group_windows.get(chat_id):
                _prune(group, now, 60.0)
                wait = max(wait, _wait_in(group, limits.group_per_minute, 60.0, now))
        if wait <= 0:
            return None
        self.throttled += 1
        return _too_many(max(1, math.ceil(wait)))

    def _accepted(self, chat_id: int, now: float) -> None:
        """Record a successful send: O(1) amortized."""
        self._times.append(now)
        self._window.append(now)
        _prune(self._window, now, 1.0)
        if (times := self._chat_times.get(chat_id)) is None:
            self._chat_times[chat_id] = [now]
        else:
            gap = now - times[-1]
            if self._min_gap is None or gap < self._min_gap:
                self._min_gap = gap
            times.append(now)
        if chat_id < 0:
            group = self._group_windows.get(chat_id)
            if group is None:
                group = self._group_windows[chat_id] = deque()
            _prune(group, now, 60.0).append(now)
