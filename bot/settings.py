"""Settings of a running bot, read from the environment and `.env` (DESIGN.md §4)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_COMMUNES = ("21439", "21451", "21457", "21472", "21478")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything configurable; built once by the entry point, passed down explicitly."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    telegram_bot_token: str | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str | None = None
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = 8443
    webhook_secret: str | None = None
    database_url: str = "sqlite+aiosqlite:///data/ocop.db"
    ocop_admins: Annotated[list[int], NoDecode] = Field(default_factory=list)
    ocop_province_code: str = "51"
    ocop_commune_codes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_COMMUNES)
    )
    ocop_timezone: str = "Asia/Ho_Chi_Minh"
    ocop_digest_time: str = "07:30"
    ocop_reminder_days: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [180, 90, 60, 30, 0]
    )
    # Messages per second over all chats, replies and notifications (Telegram allows about 30;
    # the delivery worker keeps 5% below it).
    ocop_delivery_rate: float = 30.0
    # What one sender may send: a burst, then so many messages per second (the rest is
    # recorded, answered once with a polite notice, and not handled).
    ocop_user_rate: float = 1.0
    ocop_user_burst: int = 20
    # Seconds to wait for the Bot API when delivering a notification before retrying it.
    ocop_delivery_timeout: float = 15.0
    # Personal data (Law 91/2025/QH15): who controls it, as the consent notice names it, and
    # how long what is no longer needed is kept.
    ocop_data_controller: str = "Văn phòng Điều phối nông thôn mới tỉnh Quảng Ngãi"
    ocop_form_retention_days: int = Field(default=90, ge=1)
    ocop_outbox_retention_days: int = Field(default=30, ge=1)
    zalo_bot_token: str | None = None
    zalo_api_url: str = "https://bot-api.zaloplatforms.com/bot"
    # Set to receive Zalo updates by webhook (HTTPS, public) instead of long polling; the bot
    # serves it on ZALO_WEBHOOK_LISTEN:ZALO_WEBHOOK_PORT at the URL's path.
    zalo_webhook_url: str | None = None
    zalo_webhook_secret: str | None = None  # 8 to 256 characters; required with the URL
    zalo_webhook_listen: str = "127.0.0.1"
    zalo_webhook_port: int = 8444

    _split_admins = field_validator("ocop_admins", mode="before")(_split_csv)
    _split_communes = field_validator("ocop_commune_codes", mode="before")(_split_csv)
    _split_days = field_validator("ocop_reminder_days", mode="before")(_split_csv)

    @property
    def file_url(self) -> str:
        """Base URL for files users send; derived from the API URL unless set."""
        if self.telegram_file_url:
            return self.telegram_file_url
        base = self.telegram_api_url
        if base.endswith("/bot"):
            return base[: -len("/bot")] + "/file/bot"
        return base.rstrip("/") + "/file/bot"
