"""Settings of a running bot, read from the environment and `.env` (DESIGN.md §4)."""

from __future__ import annotations

from typing import Annotated, Literal

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
    # The daily backup (bot/backup.py): where, when (local time) and how many are kept (0: none).
    ocop_backup_dir: str = "data/backups"
    ocop_backup_time: str = "02:30"
    ocop_backup_keep: int = 7
    # Log lines as text, or one JSON object a line (for a log collector); and how much.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Personal data (Law 91/2025/QH15): who controls it, as the consent notice names it, and
    # how long what is no longer needed is kept.
    ocop_data_controller: str = "Văn phòng Điều phối nông thôn mới tỉnh Quảng Ngãi"
    # The served area as people call it ("" = the names of OCOP_COMMUNE_CODES) and the office
    # producers should contact (phone or address; "" = OCOP_DATA_CONTROLLER).
    ocop_area_name: str = ""
    ocop_office_contact: str = ""
    # The exported table as a document the office sends: the issuing office of its header
    # block, the title of who signs it, and the place of its date line.
    ocop_office_name: str = "Văn phòng Điều phối nông thôn mới tỉnh Quảng Ngãi"
    ocop_signer_title: str = "Chánh Văn phòng"
    ocop_office_place: str = "Quảng Ngãi"
    ocop_form_retention_days: int = Field(default=90, ge=1)
    ocop_outbox_retention_days: int = Field(default=30, ge=1)
    # Officials are told within a minute of each registration arriving in their communes (one
    # message per official per minute); false leaves them the daily digest only.
    ocop_arrival_notices: bool = True
    # The dossier (handlers/dossier.py): a folder, or s3://bucket/prefix with the endpoint and
    # keys below; an office's own checklist (TOML, see handlers/dossier_data/checklist.toml) and
    # registration-form template (DOCX); the most one registration's files may take, in MB.
    ocop_dossier_store: str = "data/dossier"
    ocop_s3_endpoint: str | None = None
    ocop_s3_access_key: str | None = None
    ocop_s3_secret_key: str | None = None
    ocop_s3_region: str | None = None
    ocop_dossier_checklist: str = ""
    ocop_dossier_form_template: str = ""
    ocop_dossier_cover_template: str = ""
    ocop_dossier_max_mb: int = Field(default=100, ge=1)
    zalo_bot_token: str | None = None
    zalo_api_url: str = "https://bot-api.zaloplatforms.com/bot"
    # Set to receive Zalo updates by webhook (HTTPS, public) instead of long polling; the bot
    # serves it on ZALO_WEBHOOK_LISTEN:ZALO_WEBHOOK_PORT at the URL's path.
    zalo_webhook_url: str | None = None
    zalo_webhook_secret: str | None = None  # 8 to 256 characters; required with the URL
    zalo_webhook_listen: str = "127.0.0.1"
    zalo_webhook_port: int = 8444
    # Bot API error codes seen to mean "the user blocked the bot" (none is documented): a send
    # answered with one marks the chat unreachable. Other refusals are logged and recorded.
    zalo_blocked_codes: Annotated[list[int], NoDecode] = Field(default_factory=list)

    # Zalo Official Account (OA API v3, OAuth v4, ZNS): served when ZALO_OA_APP_ID is set.
    zalo_oa_app_id: str | None = None
    zalo_oa_app_secret: str | None = None  # the app's secret key (OAuth `secret_key` header)
    zalo_oa_secret_key: str | None = None  # the OA's secret key (webhook signatures)
    # The first refresh token (from the OA's authorization); the rotated ones live in the
    # database, encrypted with ZALO_OA_TOKEN_KEY (a Fernet key).
    zalo_oa_refresh_token: str | None = None
    zalo_oa_token_key: str | None = None
    zalo_oa_oauth_url: str = "https://oauth.zaloapp.com"
    zalo_oa_api_url: str = "https://openapi.zalo.me"
    zalo_zns_api_url: str = "https://business.openapi.zalo.me"
    zalo_oa_webhook_path: str = "/zalo-oa/webhook"
    zalo_oa_webhook_listen: str = "127.0.0.1"
    zalo_oa_webhook_port: int = 8445
    # Hours after a person's last message during which customer-service messages may go
    # (48 are free; Zalo allows up to 7 days).
    zalo_oa_window_hours: float = 48.0
    zalo_oa_buttons: bool = True  # numbered choices also as OA buttons
    # ZNS templates (ids given by Zalo once approved) and their parameters: a JSON object from
    # the template's parameter names to the bot's values (reminder: product, stars,
    # expiry_date, days_left; outcome: code, product, status). Empty: the bot's names as is.
    zalo_zns_reminder_template: str | None = None
    zalo_zns_reminder_params: dict[str, str] = Field(default_factory=dict)
    zalo_zns_outcome_template: str | None = None
    zalo_zns_outcome_params: dict[str, str] = Field(default_factory=dict)
    zalo_zns_hours: str = "07:00-22:00"  # in OCOP_TIMEZONE
    zalo_zns_daily_quota: int = 1000

    _split_admins = field_validator("ocop_admins", mode="before")(_split_csv)
    _split_communes = field_validator("ocop_commune_codes", mode="before")(_split_csv)
    _split_days = field_validator("ocop_reminder_days", mode="before")(_split_csv)
    _split_blocked = field_validator("zalo_blocked_codes", mode="before")(_split_csv)

    @property
    def file_url(self) -> str:
        """Base URL for files users send; derived from the API URL unless set."""
        if self.telegram_file_url:
            return self.telegram_file_url
        base = self.telegram_api_url
        if base.endswith("/bot"):
            return base[: -len("/bot")] + "/file/bot"
        return base.rstrip("/") + "/file/bot"

    def served(self, telegram_name: str | None = None) -> str:
        """What `run` serves, in one line (logged at start, printed by `check`)."""
        from sqlalchemy.engine import make_url

        channels = []
        if self.telegram_bot_token:
            name = f"Telegram @{telegram_name}" if telegram_name else "Telegram"
            if self.webhook_url:
                name += (
                    f" by webhook at {self.webhook_url} "
                    f"(listening on {self.webhook_listen}:{self.webhook_port})"
                )
            else:
                name += " by long polling"
            channels.append(name)
        if self.zalo_bot_token:
            channels.append(
                f"Zalo by webhook at {self.zalo_webhook_url}"
                if self.zalo_webhook_url
                else "Zalo by long polling"
            )
        database = make_url(self.database_url).render_as_string(hide_password=True)
        backups = (
            f"daily backup at {self.ocop_backup_time} to {self.ocop_backup_dir}, "
            f"keeping {self.ocop_backup_keep}"
            if self.ocop_backup_keep > 0
            else "no daily backup"
        )
        return f"{', '.join(channels) or 'no channel'}; database {database}; {backups}"
