"""One settings object for the whole hub, read from environment variables (prefix ``HUB_``) or ``.env``."""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = Field("", description="Base URL residents and staff reach the hub at; derived if empty")

    var_dir: Path = PROJECT_ROOT / "var"
    database_url: str = ""  # default: SQLite file under var_dir
    database_pool_size: int = 10
    redis_url: str = ""  # empty: single process, in-process event bus
    redis_prefix: str = "shuiwu"  # namespaces pub/sub channels when several hubs share one Redis
    channels: str = "webchat"  # comma-separated channel packages to enable

    secret_key: SecretStr = SecretStr("")  # signs visitor tokens; generated into var/ if empty
    session_ttl_hours: int = 12
    cookie_secure: bool = False

    rasa_url: str = ""  # empty: no bot, conversations go straight to the human queue (unless bot_autostart)
    bot_timeout_seconds: float = 3.0
    bot_autostart: bool = False  # run the Rasa server and the action server beside the hub (router/companions.py)
    bot_model_path: Path = PROJECT_ROOT / "bot" / "models" / "current.tar.gz"  # made by scripts/bot-train.sh
    rasa_port: int = 5005
    actions_port: int = 5055

    reopen_window_seconds: int = 24 * 3600
    acd_sweep_seconds: float = 1.0  # overflow, end of after-call work, silent inboxes are checked this often
    acw_seconds: float = 30.0  # after-call work lasts this long, then the agent is ready again
    presence_timeout_seconds: float = 60.0  # an agent whose inbox is silent this long is signed out
    presence_heartbeat_seconds: float = 20.0  # how often a connected inbox says it is still there
    ingest_pipelines: int = 2  # inbound batches written concurrently
    default_team: str = "热线坐席"
    timezone: str = "Asia/Shanghai"  # local day of work-order numbers, working hours
    gazetteer_path: Path | None = None  # districts for dispatch by region; default: the packaged demo
    duplicate_radius_m: float = 300.0  # reports of one category this close …
    duplicate_window_minutes: int = 120  # … and this soon after each other are likely one event
    working_hours: str = "08:30-12:00,13:30-17:30"  # local periods counted by categories on working-hours SLA
    survey_valid_days: int = 7  # how long a resident's satisfaction-survey link stays open
    billing_backend: str = "demo"  # or "package.module:Class" of the utility's billing system (router/billing.py)

    # WeChat official account (channels/wechat): the values of 公众号后台 → 设置与开发 → 基本配置
    wechat_app_id: str = ""
    wechat_app_secret: SecretStr = SecretStr("")
    wechat_token: SecretStr = SecretStr("")  # the callback's signature token
    wechat_encoding_aes_key: SecretStr = SecretStr("")  # 43 characters; empty: plain mode only
    wechat_api_base_url: str = "https://api.weixin.qq.com"  # the stand-in server's URL in tests and the demo
    wechat_oauth_base_url: str = "https://open.weixin.qq.com"  # where residents' browsers sign in (OAuth2)
    wechat_api_timeout_seconds: float = 5.0  # a call to WeChat's API slower than this is retried later
    wechat_reply_seconds: float = 4.5  # an answer ready this soon goes back as the passive reply (WeChat waits 5 s)
    wechat_fallback_template_id: str = ""  # outside the 48-hour window a reply goes out as this template message
    wechat_progress_template_id: str = ""  # work-order notices go out as this template message (else as text)
    # template keyword → text with {number} {state} {action} {text} (the notice); values are cut to WeChat's limits
    wechat_template_fields: dict[str, str] = {"character_string1": "{number}", "phrase2": "{state}",
                                              "thing3": "{text}"}
    wechat_menu_path: Path | None = None  # default: channels/wechat/menu.yml
    wechat_push_menu: bool = True  # publish the menu with menu/create when the hub starts

    outbound_max_attempts: int = 8
    outbound_backoff_base_seconds: float = 1.0
    outbound_backoff_max_seconds: float = 300.0
    outbound_lease_seconds: float = 30.0
    outbound_poll_seconds: float = 1.0
    shutdown_grace_seconds: float = 10.0

    upload_max_bytes: int = 10 * 1024 * 1024
    ws_max_frame_bytes: int = 64 * 1024
    message_max_chars: int = 2000
    webchat_messages_per_second: float = 2.0  # sustained, per visitor socket
    webchat_message_burst: int = 20

    first_admin_username: str = "admin"
    first_admin_password: SecretStr = SecretStr("")
    demo: bool = False

    log_json: bool = False
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _bot_beside_the_hub(self) -> Settings:
        if self.bot_autostart and not self.rasa_url:
            self.rasa_url = f"http://127.0.0.1:{self.rasa_port}"
        return self

    @field_validator("working_hours")
    @classmethod
    def _valid_working_hours(cls, value: str) -> str:
        from workorders.calendar import parse_periods  # the calendar belongs to work orders

        parse_periods(value)
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.var_dir / 'hub.sqlite3'}"

    @property
    def base_url(self) -> str:
        """Where residents and staff reach the hub (links in notices, printed URLs)."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def uploads_dir(self) -> Path:
        return self.var_dir / "uploads"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def load_secret_key(settings: Settings) -> str:
    """``HUB_SECRET_KEY``, or a random key generated once and kept in ``var/secret_key`` (mode 0600)."""
    configured = settings.secret_key.get_secret_value()
    if configured:
        return configured
    path = settings.var_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
