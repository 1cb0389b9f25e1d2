"""One settings object for the whole hub, read from environment variables (prefix ``HUB_``) or ``.env``."""

from __future__ import annotations

import ipaddress
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _filled(value: object) -> bool:
    return bool(value.get_secret_value() if isinstance(value, SecretStr) else value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUB_", env_file=".env", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = Field("", description="Base URL residents and staff reach the hub at; derived if empty")
    # Reverse proxies whose X-Forwarded-For is believed (comma-separated addresses or networks); empty: none
    trusted_proxies: str = ""

    var_dir: Path = PROJECT_ROOT / "var"
    database_url: str = ""  # default: SQLite file under var_dir
    database_pool_size: int = 10
    redis_url: str = ""  # empty: single process, in-process event bus
    redis_prefix: str = "shuiwu"  # namespaces pub/sub channels when several hubs share one Redis
    channels: str = "webchat"  # comma-separated channel packages to enable
    # Residents' messages that arrive while the database is unreachable are kept here until it is back
    spool_dir: Path | None = None  # default: var_dir/spool
    spool_max_megabytes: float = Field(64.0, gt=0)  # beyond this WeChat is answered 503 (it retries)

    secret_key: SecretStr = SecretStr("")  # signs visitor tokens; generated into var/ if empty
    session_ttl_hours: int = 12
    cookie_secure: bool | None = None  # cookies only over https; empty: when the public URL is https
    login_max_failures: int = Field(5, ge=2)  # failed sign-ins in a row that lock a username …
    login_lockout_minutes: int = Field(15, ge=1)  # … for this long (also how long failures are remembered)
    login_ip_free_failures: int = Field(10, ge=1)  # failures from one address before its attempts must wait
    one_time_password_hours: int = Field(72, ge=1)  # the first admin's and admin-reset passwords expire after

    rasa_url: str = ""  # empty: no bot, conversations go straight to the human queue (unless bot_autostart)
    bot_timeout_seconds: float = 3.0
    # A resident's message waits for the bot's answer as a pending turn: a turn whose process died or failed is
    # taken up again by any process's sweep once its lease has passed, and after max attempts handed to people.
    bot_turn_sweep_seconds: float = Field(5.0, gt=0)
    bot_turn_lease_seconds: float = Field(30.0, gt=0)
    bot_turn_max_attempts: int = Field(3, ge=1)
    bot_autostart: bool = False  # run the Rasa server and the action server beside the hub (router/companions.py)
    bot_model_path: Path = PROJECT_ROOT / "bot" / "models" / "current.tar.gz"  # made by scripts/bot-train.sh
    rasa_port: int = 5005
    actions_port: int = 5055
    # The action server listens here and Rasa calls it here; another address only for a split deployment
    actions_host: str = "127.0.0.1"
    rasa_token: SecretStr = SecretStr("")  # Rasa's API and webhook; empty: derived from the secret key
    actions_secret: SecretStr = SecretStr("")  # Rasa's calls to the action server; empty: derived likewise

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
    # The phone line's staffed hours on working days (holidays per the State Council's calendar); outside them
    # the IVR offers only self-service and voicemail. Empty: HUB_WORKING_HOURS; "24x7": always staffed.
    voice_hours: str = ""
    survey_valid_days: int = 7  # how long a resident's satisfaction-survey link stays open
    billing_backend: str = "demo"  # or "package.module:Class" of the utility's billing system (router/billing.py)

    # WeChat official account (channels/wechat): the values of 公众号后台 → 设置与开发 → 基本配置
    wechat_app_id: str = ""
    wechat_app_secret: SecretStr = SecretStr("")
    wechat_token: SecretStr = SecretStr("")  # the callback's signature token
    wechat_encoding_aes_key: SecretStr = SecretStr("")  # 43 characters; empty: plain mode only
    # 消息加解密方式: plain, compatible (plain or encrypted) or safe (encrypted only); default safe with an AES key
    wechat_mode: Literal["", "plain", "compatible", "safe"] = ""
    wechat_timestamp_window_seconds: int = Field(300, ge=30)  # callbacks signed further from now are refused
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

    # Phone (channels/voice): Asterisk's ARI, the Stasis application its dialplan hands every call to
    voice_ari_url: str = "http://127.0.0.1:8088"
    voice_ari_username: str = "hub"
    voice_ari_password: SecretStr = SecretStr("")
    voice_app: str = Field("hub", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # Rendered prompts; Asterisk must see this folder as sounds/shuiwu (a shared volume in production)
    voice_prompt_dir: Path | None = None  # default: var_dir/prompts
    voice_max_voicemail_seconds: int = Field(120, ge=5, le=600)
    voice_reconnect_max_seconds: float = Field(30.0, gt=0)  # back-off ceiling of the ARI WebSocket
    # The digest realm of agents' phones (what the phone is challenged with); part of each stored digest, so a
    # change makes every agent's phone password invalid until it is set again.
    voice_sip_realm: str = Field("shuiwu", pattern=r"^[A-Za-z0-9.\-]{1,64}$")
    # Where agents' inbox softphones reach Asterisk's SIP WebSocket (empty: the ARI address's /ws, ws or wss)
    voice_sip_ws_url: str = Field("", pattern=r"^(wss?://[^\s]+)?$")
    voice_ring_seconds: int = Field(20, ge=5, le=120)  # an agent's phone rings this long before the next is tried
    # Agents' calls to residents go through the carrier's trunk: where ({number}: the national number), the
    # number shown to the resident, and how long the resident's phone rings; empty: no outbound calls.
    voice_outbound_uri: str = Field("", pattern=r"^(sips?:[^\s]*\{number\}[^\s]*)?$")
    voice_outbound_caller_id: str = Field("", pattern=r"^\+?[0-9]{0,20}$")
    voice_outbound_ring_seconds: int = Field(30, ge=5, le=120)
    voice_campaign_poll_seconds: float = Field(2.0, gt=0, le=60)  # how often the campaign dialer looks for due calls

    # SMS (channels/sms): an SMPP 3.4 transceiver bind to the carrier's SMSC or an SMS gateway, or Tencent Cloud SMS
    sms_provider: Literal["smpp", "tencent"] = "smpp"
    sms_smpp_host: str = "127.0.0.1"
    sms_smpp_port: int = Field(2775, ge=1, le=65535)
    sms_smpp_system_id: str = Field("", max_length=15)
    sms_smpp_password: SecretStr = SecretStr("")  # SMPP 3.4 allows at most 8 characters
    sms_smpp_system_type: str = Field("", max_length=12)
    # Submits out at once, unanswered; smpp34 1.5's client fails submits past 20 with ESME_RSYSERR
    sms_smpp_window: int = Field(10, ge=1, le=20)
    sms_service_number: str = Field("", pattern=r"^([0-9]{3,20})?$")  # what residents text, and see texts from
    sms_max_parts: int = Field(6, ge=1, le=255)  # a longer reply is shortened (ending in …) to this many SMS
    sms_submit_timeout_seconds: float = Field(10.0, gt=0, le=120)  # an unanswered submit is tried again later
    sms_reconnect_max_seconds: float = Field(30.0, gt=0)  # back-off ceiling of binding again
    sms_tencent_secret_id: str = ""
    sms_tencent_secret_key: SecretStr = SecretStr("")
    sms_tencent_sdk_app_id: str = Field("", pattern=r"^([0-9]{6,20})?$")
    sms_tencent_sign_name: str = Field("", max_length=30)  # the approved signature, e.g. 清源水务
    sms_tencent_template_id: str = Field("", pattern=r"^([0-9]{1,20})?$")  # approved, with one variable {1}
    sms_tencent_endpoint: str = Field("https://sms.tencentcloudapi.com", pattern=r"^https?://[^\s/]+$")
    sms_tencent_region: str = "ap-guangzhou"
    sms_callback_token: SecretStr = SecretStr("")  # the secret in the path of a cloud provider's web hooks

    outbound_max_attempts: int = 8
    outbound_backoff_base_seconds: float = 1.0
    outbound_backoff_max_seconds: float = 300.0
    outbound_lease_seconds: float = 30.0
    outbound_poll_seconds: float = 1.0
    shutdown_grace_seconds: float = 10.0

    upload_max_bytes: int = 10 * 1024 * 1024
    upload_files_per_day: int = Field(20, ge=1)  # a web chat visitor's files in any 24 hours …
    upload_megabytes_per_day: int = Field(50, ge=1)  # … and their size together
    ws_max_frame_bytes: int = 64 * 1024
    message_max_chars: int = 2000
    webchat_messages_per_second: float = 2.0  # sustained, per visitor socket
    webchat_message_burst: int = 20

    first_admin_username: str = "admin"
    first_admin_password: SecretStr = SecretStr("")
    demo: bool = False

    # Per client address (limits' notation, ";" between several): refused with 429 beyond them
    rate_limit_new_visitors: str = "20/minute;200/hour"  # POST /webchat/visitors: new web chat visitors
    rate_limit_uploads: str = "30/minute;300/hour"  # POST /webchat/upload
    rate_limit_surveys: str = "30/minute"  # /api/surveys (survey links' tokens)
    rate_limit_wechat_refusals: str = "30/minute"  # /wechat: only refused posts count (bad, stale signatures)

    retention_days: int = Field(365, ge=1)  # closed conversations, their files and audit entries are kept this long
    retention_interval_hours: float = Field(6.0, gt=0)  # how often what passed retention_days is deleted

    log_json: bool = False
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _bot_beside_the_hub(self) -> Settings:
        if self.bot_autostart and not self.rasa_url:
            self.rasa_url = f"http://127.0.0.1:{self.rasa_port}"
        return self

    @model_validator(mode="after")
    def _lease_outlasts_the_bot(self) -> Settings:
        if self.bot_turn_lease_seconds <= self.bot_timeout_seconds:
            raise ValueError("HUB_BOT_TURN_LEASE_SECONDS must be longer than HUB_BOT_TIMEOUT_SECONDS: a turn "
                             "still waiting for the bot would be taken over by another process")
        return self

    @model_validator(mode="after")
    def _wechat_mode(self) -> Settings:
        has_key = bool(self.wechat_encoding_aes_key.get_secret_value())
        if not self.wechat_mode:
            self.wechat_mode = "safe" if has_key else "plain"
        elif self.wechat_mode != "plain" and not has_key:
            raise ValueError(f"HUB_WECHAT_MODE={self.wechat_mode} needs HUB_WECHAT_ENCODING_AES_KEY")
        return self

    @model_validator(mode="after")
    def _sms_account(self) -> Settings:
        if "sms" not in (name.strip() for name in self.channels.split(",")):
            return self
        if self.sms_provider == "tencent":
            missing = [f"HUB_{name.upper()}" for name in (
                "sms_tencent_secret_id", "sms_tencent_secret_key", "sms_tencent_sdk_app_id", "sms_tencent_sign_name",
                "sms_tencent_template_id", "sms_callback_token") if not _filled(getattr(self, name))]
            if missing:
                raise ValueError(f"the sms channel on Tencent Cloud needs {', '.join(missing)}")
            if len(self.sms_callback_token.get_secret_value()) < 16:
                raise ValueError("HUB_SMS_CALLBACK_TOKEN: at least 16 characters (it guards the web hooks)")
            return self
        if not self.sms_smpp_system_id or not self.sms_smpp_password.get_secret_value():
            raise ValueError("the sms channel needs HUB_SMS_SMPP_SYSTEM_ID and HUB_SMS_SMPP_PASSWORD")
        if len(self.sms_smpp_password.get_secret_value()) > 8:
            raise ValueError("HUB_SMS_SMPP_PASSWORD: SMPP 3.4 passwords have at most 8 characters")
        if not self.sms_service_number:
            raise ValueError("the sms channel needs HUB_SMS_SERVICE_NUMBER (the number residents text)")
        return self

    @field_validator("working_hours")
    @classmethod
    def _valid_working_hours(cls, value: str) -> str:
        from workorders.calendar import parse_periods  # the calendar belongs to work orders

        parse_periods(value)
        return value

    @field_validator("voice_hours")
    @classmethod
    def _valid_voice_hours(cls, value: str) -> str:
        from workorders.calendar import parse_periods

        if value.strip() not in ("", "24x7"):
            parse_periods(value)
        return value.strip()

    @field_validator("rate_limit_new_visitors", "rate_limit_uploads", "rate_limit_surveys",
                     "rate_limit_wechat_refusals")
    @classmethod
    def _valid_rate_limit(cls, value: str) -> str:
        import limits

        limits.parse_many(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        from router.net import parse_networks

        parse_networks(value)
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.var_dir / 'hub.sqlite3'}"

    @property
    def base_url(self) -> str:
        """Where residents and staff reach the hub (links in notices, printed URLs)."""
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    @property
    def is_local(self) -> bool:
        """Whether only this machine reaches the hub: it listens on loopback and its public URL, if set, is local."""
        return is_loopback(self.host) and (not self.public_url or is_loopback(urlsplit(self.public_url).hostname))

    @property
    def is_https(self) -> bool:
        """Whether residents and staff reach the hub over TLS (a reverse proxy in front of it)."""
        return urlsplit(self.public_url).scheme.lower() == "https"

    @property
    def secure_cookies(self) -> bool:
        return self.is_https if self.cookie_secure is None else self.cookie_secure

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def effective_spool_dir(self) -> Path:
        return self.spool_dir or self.var_dir / "spool"

    @property
    def effective_prompt_dir(self) -> Path:
        return self.voice_prompt_dir or self.var_dir / "prompts"

    @property
    def effective_sip_ws_url(self) -> str:
        """The SIP WebSocket of agents' softphones: set, or Asterisk's HTTP server (the ARI's) at ``/ws``."""
        if self.voice_sip_ws_url:
            return self.voice_sip_ws_url
        parts = urlsplit(self.voice_ari_url)
        return urlunsplit(("wss" if parts.scheme == "https" else "ws", parts.netloc, "/ws", "", ""))

    @property
    def uploads_dir(self) -> Path:
        return self.var_dir / "uploads"


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback address; an empty host (every address) is not."""
    if not host:
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
