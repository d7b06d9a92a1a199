"""The delivery errors every channel adapter raises from its send: the delivery worker
(bot/delivery.py) knows these and nothing of any messenger's own errors.

Each adapter translates its service's answers at its send boundary (bot/channels/telegram.py,
zalo_bot.py, zalo_oa_send.py); anything else a send raises is taken for a bug and retried."""

from __future__ import annotations

import datetime as dt


class DeliveryError(Exception):
    """A send that did not go out, and what the channel said about it."""


class Flood(DeliveryError):
    """Too many messages: the channel takes no more until `retry_after` has passed (the
    chat waits, and the channel's shared budget is delayed)."""

    def __init__(self, retry_after: dt.timedelta, reason: str = "flood control") -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class Blocked(DeliveryError):
    """The recipient cannot be reached (blocked the bot, left): failed, the chat marked."""


class Rejected(DeliveryError):
    """The channel refused this message; sending it again would fail the same way."""


class HandedOver(Rejected):
    """Not sent here, but queued for the person on another of their channels (Zalo OA's
    fallback): failed on this channel, not lost, so nobody is told it was."""


class Transient(DeliveryError):
    """A timeout, a connection reset, a server error: retried later with a back-off."""


class Deferred(DeliveryError):
    """The channel holds the message back until `until` (ZNS sending hours, the day's
    quota). It stays queued, not counted as a failed attempt."""

    def __init__(self, until: dt.datetime, reason: str) -> None:
        super().__init__(reason)
        self.until = until
