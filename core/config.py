"""Settings from environment variables and an optional `.env` file.

Every process (bot, action server, CLI) reads the same settings, so a
deployment is configured in one place. See README "Configuration".
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import secret as shared

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VAR_DIR = PROJECT_ROOT / "var"


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
    join_failures_per_hour: int = Field(default=5, ge=1,
                                        description="Wrong /join codes in an hour before a person is locked out.")
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

    def shared_secret(self) -> str:
        """GRIDBOT_SECRET, or the generated one in var/secret; core.secret.SecretError when
        BIND_HOST is not loopback and GRIDBOT_SECRET is unset."""
        configured = self.gridbot_secret.get_secret_value() if self.gridbot_secret else None
        return shared.resolve(configured, self.bind_host)[0]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
