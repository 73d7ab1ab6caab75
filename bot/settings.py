"""Settings: one object, built in `main` from the environment and `.env`, passed down."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

ENV_NAMES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "DIALNEXA_WEBHOOK_SECRET",
    "DIALNEXA_API_KEY",
    "DIALNEXA_API_URL",
    "POLYGON_API_KEY",
    "POLYGON_API_URL",
    "OUTCOME_WEBHOOK_URL",
    "OUTCOME_WEBHOOK_SECRET",
    "DATABASE_URL",
    "COUNTERSIGN_POLICY",
)


class Settings(BaseSettings):
    """Every variable of DESIGN §4; secrets are `SecretStr` and never printed."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    dialnexa_webhook_secret: SecretStr | None = None
    dialnexa_api_key: SecretStr | None = None
    dialnexa_api_url: str = "https://api.dialnexa.com/v1"
    polygon_api_key: SecretStr | None = None
    polygon_api_url: str = "https://api.polygon.io"
    outcome_webhook_url: str | None = None
    outcome_webhook_secret: SecretStr | None = None
    database_url: str = "sqlite:///./countersign.db"
    countersign_policy: Path | None = Field(default=None)
    countersign_tick_seconds: float = Field(default=15.0, gt=0)  # the scheduler's interval

    @property
    def webhook_secrets(self) -> list[bytes]:
        """The DialNexa webhook secrets; more than one while a secret is being rotated."""
        if self.dialnexa_webhook_secret is None:
            return []
        raw = self.dialnexa_webhook_secret.get_secret_value()
        return [part.strip().encode() for part in raw.split(",") if part.strip()]

    @property
    def policy_path(self) -> Path | None:
        """The policy file: `COUNTERSIGN_POLICY`, else `./policy.yml` when present, else none."""
        if self.countersign_policy is not None:
            return self.countersign_policy
        default = Path("policy.yml")
        return default if default.exists() else None

    @property
    def slack_configured(self) -> bool:
        """True when Countersign can talk to Slack."""
        return self.slack_bot_token is not None

    def require(self, *, socket_mode: bool = False) -> None:
        """Stop with one clear line naming the first required variable that is missing."""
        if not self.webhook_secrets:
            raise ConfigError(
                "DIALNEXA_WEBHOOK_SECRET is not set: it is required to verify DialNexa webhooks."
            )
        if socket_mode and self.slack_app_token is None:
            raise ConfigError("SLACK_APP_TOKEN is not set: it is required for --socket-mode.")
        if socket_mode and self.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN is not set: it is required for --socket-mode.")
        if not socket_mode and self.slack_bot_token and self.slack_signing_secret is None:
            raise ConfigError(
                "SLACK_SIGNING_SECRET is not set: it is required to verify requests from Slack."
            )
        if self.outcome_webhook_url and self.outcome_webhook_secret is None:
            raise ConfigError(
                "OUTCOME_WEBHOOK_SECRET is not set: it is required to sign outcome deliveries."
            )


def write_dev_env(path: Path, environ: dict[str, str] | None = None) -> bool:
    """Write a git-ignored `.env` with fresh development secrets when no configuration exists.

    Returns True when the file was written. Nothing is written if the file exists or any
    Countersign variable is already set in the environment: configuration is never overwritten.
    """
    env = os.environ if environ is None else environ
    if path.exists() or any(name in env for name in ENV_NAMES):
        return False
    path.write_text(
        "# Development settings written by `countersign serve` on first run. Not for production.\n"
        "# Add SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET to connect a Slack workspace.\n"
        f"DIALNEXA_WEBHOOK_SECRET=dev_{secrets.token_hex(24)}\n"
        f"OUTCOME_WEBHOOK_SECRET=dev_{secrets.token_hex(24)}\n"
        "DATABASE_URL=sqlite:///./countersign.db\n",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return True


def async_database_url(url: str) -> str:
    """Pick the async driver for a `sqlite://` or `postgresql://` URL."""
    if url.startswith("sqlite:///") or url == "sqlite://":
        return "sqlite+aiosqlite" + url[len("sqlite") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    raise ConfigError(f"DATABASE_URL must start with sqlite:/// or postgresql://, got {url[:20]!r}")
