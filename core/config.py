"""Settings from environment variables and an optional `.env` file.

Every process (bot, action server, CLI) reads the same settings, so a
deployment is configured in one place. See README "Configuration".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import secret as shared

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"
WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")  # Telegram's rule for setWebhook's secret_token


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    database_url: str = Field(
        default=f"sqlite:///{VAR_DIR / 'gridbot.db'}",
        description="SQLAlchemy URL; SQLite under var/ by default, PostgreSQL in production.",
    )
    telegram_bot_token: str | None = Field(default=None, description="Bot API token from @BotFather.")
    rasa_url: str = Field(default="http://127.0.0.1:5005", description="Base URL of the Rasa server.")
    rasa_port: int = Field(default=5005, description="Port `make run` starts the Rasa server on.")
    action_server_port: int = Field(default=5055, description="Port of the action server.")
    bind_host: str = Field(default="127.0.0.1", description="Address every server binds to.")
    gridbot_secret: SecretStr | None = Field(
        default=None,
        description="The secret every process boundary checks; unset: generated in var/secret "
                    "(refused with a non-loopback BIND_HOST). See core/secret.py.")
    telegram_api_url: str = Field(default="https://api.telegram.org",
                                  description="Bot API server (a local one, or a test double).")
    # Webhook mode (bot/webhook.py): set the URL and Telegram delivers updates to it instead of
    # the bot polling. The local server binds TELEGRAM_WEBHOOK_HOST:PORT and serves the URL's path.
    telegram_webhook_url: str | None = Field(
        default=None, description="Public HTTPS URL Telegram posts updates to (nginx in front); "
                                  "unset: the bot polls getUpdates.")
    telegram_webhook_secret: SecretStr | None = Field(
        default=None, description="The X-Telegram-Bot-Api-Secret-Token every delivery must carry "
                                  "(1-256 of A-Z a-z 0-9 _ -); unset: derived from the shared secret, "
                                  "so every replica sets the same one.")
    telegram_webhook_host: str = Field(default="127.0.0.1", description="Address the webhook server binds to.")
    telegram_webhook_port: int = Field(default=8081, ge=1, le=65535, description="Port of the webhook server.")
    bot_metrics_port: int = Field(default=9108, ge=0, le=65535,
                                  description="Port of the bot's /metrics (on BIND_HOST); 0: none.")
    redis_url: str | None = Field(default=None, description=(
        "Redis (Rasa's lock store when several Rasa servers run); `gridbot health` checks it is reachable."))
    telegram_rate: int = Field(default=30, ge=1, le=1000, description=(
        "Requests a second the bot token may make of Telegram in all (bot/ratelimit.py), shared by every "
        "bot replica; Telegram's limit is about 30. Raise it only when Telegram has raised it for the bot."))
    timezone: str = Field(default="Asia/Shanghai", description="Zone for display and ticket years; storage is UTC.")
    log_level: str = Field(default="INFO", description="Python logging level.")
    log_dir: Path = Field(default=VAR_DIR / "log",
                          description="Where `make run` writes each server's output (rotated).")
    # Per-person limits (core/access/limits.py), counted from the database over a sliding window.
    report_limit_per_hour: int = Field(default=10, ge=1, description="Reports one resident may file in an hour.")
    emergency_limit_per_hour: int = Field(default=3, ge=1,
                                          description="Urgent tickets one resident may file in an hour.")
    binding_limit_per_day: int = Field(default=3, ge=1,
                                       description="Bindings (/start to the end) one person may make in 24 hours.")
    proposal_supporters: int = Field(default=5, ge=1,
                                     description="Residents of one grid (the proposer included) who must support a "
                                                 "居民提议 before it goes on the secretary's agenda.")
    proposal_answer_days: int = Field(default=7, ge=1,
                                      description="Days a secretary has to answer a proposal on the agenda.")
    # 共享空间 (core/spaces/rules.py)
    spaces_cancel_hours: float = Field(default=2, ge=0,
                                       description="A space booking may be cancelled until this many hours "
                                                   "before its start.")
    spaces_no_show_limit: int = Field(default=2, ge=1,
                                      description="No-shows within SPACES_NO_SHOW_DAYS after which a person may "
                                                  "not book spaces for SPACES_BAN_DAYS.")
    spaces_no_show_days: int = Field(default=90, ge=1, description="The window in which no-shows count.")
    spaces_ban_days: int = Field(default=30, ge=1,
                                 description="Days a person may not book after too many no-shows.")
    join_failures_per_hour: int = Field(default=5, ge=1,
                                        description="Wrong /join codes in an hour before a person is locked out.")
    study_note_min_chars: int = Field(default=50, ge=1, le=1000,
                                      description="Characters (spaces not counted) a 补学 学习心得 must have; "
                                                  "a voice note instead needs none.")
    offline_live: bool = Field(default=True, description=(
        "Offline mode: the chat also runs the broadcast sender and the duty scheduler (gridbot shell --live)."))
    reminder_lead: int | None = Field(default=None, ge=1, le=60,
                                      description="Offline mode: minutes before the shell's demo session its "
                                                  "reminder comes (core/duties/demo_soon.py); unset: 2.")
    # Time limits that act (core/tickets/deadlines.py).
    deadline_reminders: str = Field(default="0.5,0.8", description=(
        "The two fractions of a response or resolve limit at which the handlers are reminded."))
    digest_minutes: int = Field(default=10, ge=1, description="At most one deadline digest per branch group this often.")
    stats_rank_min: int = Field(default=5, ge=1,
                                description="Grids with fewer tickets in a month are not ranked in the rate reports.")
    emergency_recall_minutes: int = Field(default=10, ge=1,
                                          description="An emergency nobody claimed this long after filing: admins again.")
    # 战时 mobilisation (core/mobilise/sweep.py)
    mobilise_escalate_minutes: int = Field(default=15, ge=1, description=(
        "A grid of a mobilisation with nobody on site this long after the declaration goes to the community "
        "admins, after twice this to the street admins."))
    mobilise_roster_minutes: int = Field(default=5, ge=1, description=(
        "The grid leaders get their 作战单元 roster this long after the declaration at the latest (at once when "
        "everyone of the grid has answered)."))

    @field_validator("deadline_reminders")
    @classmethod
    def _two_fractions(cls, value: str) -> str:
        try:
            first, second = (float(part) for part in value.split(","))
        except ValueError:
            raise ValueError(f"expected two fractions like 0.5,0.8, not {value!r}") from None
        if not 0 < first < second < 1:
            raise ValueError(f"expected 0 < first < second < 1, not {value!r}")
        return value

    @property
    def deadline_fractions(self) -> tuple[float, float]:
        first, second = (float(part) for part in self.deadline_reminders.split(","))
        return first, second

    # The web process (web/): Open311 GeoReport v2 at /open311/v2 (docs/open311.md).
    web_host: str = Field(default="127.0.0.1", description="Address the web process binds to.")
    web_port: int = Field(default=8080, description="Port of the web process.")
    web_public_url: str | None = Field(
        default=None, description="The web process's address as clients reach it (links such as "
                                  "media_url); unset: taken from each request.")
    # The command centre (web/centre, README "The command centre").
    web_base_url: str = Field(
        default="http://127.0.0.1:8080", description="Where the command centre's login links point "
                                                     "(the web process as browsers reach it).")
    web_cookie_secure: bool = Field(
        default=True, description="The session cookie is Secure (HTTPS only); false only for "
                                  "http://127.0.0.1 in tests and demos.")
    web_login_minutes: int = Field(default=10, ge=1, le=60, description="How long a /web login link is good for.")
    web_idle_minutes: int = Field(default=60, ge=5, description="A command-centre session unused this long ends.")
    open311_get_needs_key: bool = Field(
        default=False, description="Open311 GETs need an api_key too (they are public by default).")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)") from exc
        return value

    @field_validator("gridbot_secret", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: object) -> object:
        # GRIDBOT_SECRET= counts as unset. Checked by shared_secret(), not here: a validation
        # error would print the value.
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("telegram_webhook_url", "redis_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("telegram_webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"TELEGRAM_WEBHOOK_URL must be an https:// URL, not {value!r}")
        return value

    @field_validator("telegram_webhook_secret", mode="before")
    @classmethod
    def _webhook_secret(cls, value: object) -> object:
        # Blank is unset. Telegram's rule is checked by webhook_secret(), not here: a validation
        # error would print the value.
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return level

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def webhook_secret(self) -> str:
        """TELEGRAM_WEBHOOK_SECRET, or one derived from the shared secret (an HMAC, so it tells
        nothing of it): every replica with the same GRIDBOT_SECRET sets and checks the same token."""
        if self.telegram_webhook_secret is not None:
            value = self.telegram_webhook_secret.get_secret_value()
            if not WEBHOOK_SECRET.fullmatch(value):
                raise ValueError("TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
            return value
        digest = hmac.new(self.shared_secret().encode(), b"telegram-webhook-secret", hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def shared_secret(self) -> str:
        """GRIDBOT_SECRET, or the generated one in var/secret; core.secret.SecretError when
        BIND_HOST is not loopback and GRIDBOT_SECRET is unset."""
        configured = self.gridbot_secret.get_secret_value() if self.gridbot_secret else None
        return shared.resolve(configured, self.bind_host)[0]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
