"""Logging of a running bot: text or JSON lines (LOG_FORMAT), the level (LOG_LEVEL), and the
noisy libraries quietened (httpx would log the token, the scheduler a line per job per tick)."""

from __future__ import annotations

import datetime as dt
import json
import logging

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the traceback
    when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class RoutineAsDebug(logging.Filter):
    """Lines a library logs at INFO that are routine, so DEBUG: the job scheduler's for each job
    every minute, the Application's and Alembic's at every start (the bot logs one line saying
    what it serves). `prefixes`: only the messages that begin so."""

    def __init__(self, *prefixes: str) -> None:
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and (
            not self.prefixes or str(record.msg).startswith(self.prefixes)
        ):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


ROUTINE = {
    "apscheduler.scheduler": (),
    "apscheduler.executors.default": (),
    "telegram.ext.Application": (),
    "alembic.runtime.migration": ("Context impl", "Will assume"),
}


def configure_logging(log_format: str = "text", level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    # A no-op where logging is already set up (under pytest, or an embedding program).
    logging.basicConfig(level=level, handlers=[handler])
    # httpx logs every request URL at INFO, and Telegram URLs contain the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    for name, prefixes in ROUTINE.items():
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RoutineAsDebug)]:
            logger.removeFilter(old)
        logger.addFilter(RoutineAsDebug(*prefixes))
