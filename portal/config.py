"""Settings read from the environment: one place, validated, typed.

Every variable (docs/configuration.md) is optional so that `make run` needs none of them; a value
that is present but wrong stops start-up with a `ConfigError` naming the variable, because a service
that starts with a half-understood configuration fails later in a way that is much harder to trace.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


class ConfigError(ValueError):
    """A configuration value is present but unusable; the message names the variable."""


EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class Settings:
    """The validated environment, with the embedded defaults filled in."""

    database_url: str
    redis_url: str | None
    secret_key: str
    imagekit_private_key: str | None = None
    imagekit_public_key: str | None = None
    imagekit_url_endpoint: str | None = None
    imagekit_base_url: str | None = None
    image_sharing: str = "share"
    image_max_bytes: int = 25 * 1024 * 1024
    pool_master_target: int = 5
    pool_user_target: int = 1
    pool_low_watermark: int = 2
    pool_fallback: str = "sync"
    mail_server: str | None = None
    mail_port: int = 25
    mail_default_sender: str = "campaign-pool@localhost"
    alert_emails: tuple[str, ...] = field(default_factory=tuple)
    slack_webhook_url: str | None = None
    alert_cooldown_minutes: int = 30
    api_token_ttl_days: int = 365

    @property
    def api_token_max_age(self) -> timedelta | None:
        """How long an API token lives after it was issued; None: tokens do not expire."""
        return timedelta(days=self.api_token_ttl_days) if self.api_token_ttl_days else None

    pool_build_timeout_s: int = 600
    # JSON Web Tokens for the Chi War clients (docs/api.md, "JWT"). The default secret is
    # derived from SECRET_KEY, so a deployment that sets nothing still signs with a private key.
    jwt_secret: str = ""
    jwt_algorithm: str = "HS256"
    jwt_lifetime_hours: int = 168
    # Browser origins allowed to call the API cross-origin (Flask-CORS); none by default.
    cors_origins: tuple[str, ...] = field(default_factory=tuple)

    @property
    def jwt_lifetime(self) -> timedelta:
        """How long a JWT issued here stays valid (its `exp` minus its `iat`)."""
        return timedelta(hours=self.jwt_lifetime_hours)

    # Refills build in parallel (docs/pool.md, "Refills"): the default cap on builds of one pool
    # in flight at once, overridable at runtime (`max_parallel_builds`).
    pool_max_parallel_builds: int = 10
    # The kill switch (docs/operations.md, "Rollback: switch the pool off"): False sends every
    # create to the fallback whatever the runtime setting says.
    pool_assignment: bool = True
    # Security (docs/security.md): sign-in throttle and lockout, sessions, TLS, health, quotas.
    sign_in_limit_account: str | None = "5 per minute"
    sign_in_limit_address: str | None = "20 per minute"
    lockout_threshold: int = 10
    lockout_minutes: int = 15
    remember_cookie_days: int = 14
    session_cookie_secure: bool = False
    preferred_url_scheme: str = "http"
    proxy_fix_hops: int = 0
    socketio_origins: tuple[str, ...] = field(default_factory=tuple)
    health_token: str | None = None
    campaign_create_limit: str | None = "30 per hour"
    campaign_cap_per_user: int = 200

    @property
    def secure_cookies(self) -> bool:
        """Cookies get the Secure flag when asked for, or when the site is served over https."""
        return self.session_cookie_secure or self.preferred_url_scheme == "https"

    # Bearer token Prometheus sends to scrape `/metrics`; None: the endpoint answers 404.
    metrics_token: str | None = None

    @property
    def embedded_queue(self) -> bool:
        """No REDIS_URL: RQ, locks and pub/sub run on an in-process fakeredis."""
        return self.redis_url is None

    @property
    def image_service(self) -> str:
        """`imagekit` when ImageKit is configured, else the local file store."""
        return "imagekit" if self.imagekit_private_key else "local"

    def flask_config(self) -> dict[str, Any]:
        """The Flask/extension configuration keys these settings translate to."""
        is_sqlite = self.database_url.startswith("sqlite")
        engine_options: dict[str, Any] = {"pool_pre_ping": True}
        if is_sqlite:
            engine_options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            engine_options.update(pool_size=10, max_overflow=20, pool_recycle=1800)
        return {
            "SECRET_KEY": self.secret_key,
            "SQLALCHEMY_DATABASE_URI": self.database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "SQLALCHEMY_TRACK_MODIFICATIONS": False,
            "MAX_CONTENT_LENGTH": 1 * 1024 * 1024,
            "WTF_CSRF_TIME_LIMIT": None,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_SECURE": self.secure_cookies,
            "REMEMBER_COOKIE_HTTPONLY": True,
            "REMEMBER_COOKIE_SAMESITE": "Lax",
            "REMEMBER_COOKIE_SECURE": self.secure_cookies,
            "REMEMBER_COOKIE_DURATION": timedelta(days=self.remember_cookie_days),
            "PREFERRED_URL_SCHEME": self.preferred_url_scheme,
            "SETTINGS": self,
        }

    def redacted(self) -> dict[str, Any]:
        """The settings with secrets masked, safe to log or show in the portal."""
        secret_fields = {
            "secret_key",
            "imagekit_private_key",
            "slack_webhook_url",
            "health_token",
            "metrics_token",
            "jwt_secret",
        }
        out = asdict(self)
        for name in secret_fields:
            if out.get(name):
                out[name] = "***"
        out["database_url"] = _redact_url(self.database_url)
        if self.redis_url:
            out["redis_url"] = _redact_url(self.redis_url)
        return out


def _redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "***"


def _blank_to_none(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = _blank_to_none(env.get(name))
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {value}")
    return value


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = _blank_to_none(env.get(name))
    if raw is None:
        return default
    value = raw.lower()
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return value


def _http_url(env: Mapping[str, str], name: str, *, secret: bool = False) -> str | None:
    """An http(s) URL without whitespace or control characters (an HTTP client would refuse
    it at the first request, quoting it). A `secret` URL (one whose path is the credential, like
    a Slack webhook) is never echoed in the error."""
    raw = _blank_to_none(env.get(name))
    if raw is None:
        return None
    shown = "(not shown: it is a credential)" if secret else repr(raw)
    parsed = urlparse(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"{name} must be an http(s) URL, got {shown}")
    if any(ch.isspace() or not ch.isprintable() for ch in raw):
        raise ConfigError(f"{name} must not contain spaces or control characters, got {shown}")
    return raw.rstrip("/")


def normalize_database_url(raw: str, name: str = "DATABASE_URL") -> str:
    """Accept the URL spellings operators use and pin the PostgreSQL driver to psycopg 3."""
    url = raw.strip()
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"{name} is not a database URL: {raw!r}") from None
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        if parsed.drivername != "postgresql+psycopg":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return parsed.render_as_string(hide_password=False)
    if backend == "sqlite":
        return url
    raise ConfigError(f"{name} must be a postgresql:// or sqlite:// URL, got {backend!r}")


def _database_url(env: Mapping[str, str], instance_path: Path) -> str:
    raw = _blank_to_none(env.get("DATABASE_URL"))
    if raw is None:
        return f"sqlite:///{instance_path / 'campaign_pool.sqlite3'}"
    return normalize_database_url(raw)


def _redis_url(env: Mapping[str, str]) -> str | None:
    raw = _blank_to_none(env.get("REDIS_URL"))
    if raw is None:
        return None
    if urlparse(raw).scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"REDIS_URL must be a redis://, rediss:// or unix:// URL, got {raw!r}")
    return raw


def ensure_instance_folder(instance_path: Path) -> Path:
    """The instance folder, created readable by its owner only (0700): it holds the SQLite
    database, the generated secret key, the demo admin's password and local image files.
    An existing folder is left as the operator made it."""
    instance_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return instance_path


def _secret_key(env: Mapping[str, str], instance_path: Path) -> str:
    """SECRET_KEY, or one generated once and kept in the instance folder (mode 0600)."""
    raw = _blank_to_none(env.get("SECRET_KEY"))
    if raw is not None:
        if len(raw) < 16:
            raise ConfigError("SECRET_KEY must be at least 16 characters long")
        return raw
    key_file = instance_path / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    ensure_instance_folder(instance_path)
    key = secrets.token_hex(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


METRICS_TOKEN_MIN_LENGTH = 16


def _metrics_token(env: Mapping[str, str]) -> str | None:
    """METRICS_TOKEN: unset turns `/metrics` off; a short or spaced token is refused, since it
    guards figures about the service and sits in the scraper's configuration."""
    raw = _blank_to_none(env.get("METRICS_TOKEN"))
    if raw is None:
        return None
    if len(raw) < METRICS_TOKEN_MIN_LENGTH or any(ch.isspace() for ch in raw):
        raise ConfigError(
            f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters without spaces"
        )
    return raw


def _emails(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = _blank_to_none(env.get(name))
    if raw is None:
        return ()
    emails = tuple(part.strip() for part in raw.split(",") if part.strip())
    for email in emails:
        if not EMAIL_RE.match(email):
            raise ConfigError(f"{name} holds an invalid email address: {email!r}")
    return emails


JWT_ALGORITHMS = ("HS256", "HS512")
JWT_SECRET_MIN = 32


def _jwt_secret(env: Mapping[str, str], secret_key: str) -> str:
    """JWT_SECRET, or a key derived from SECRET_KEY (HMAC, so the two never coincide). At least
    32 characters: shorter HMAC keys are guessable offline from any one token."""
    raw = _blank_to_none(env.get("JWT_SECRET"))
    if raw is None:
        return hmac.new(secret_key.encode(), b"campaign-pool jwt", hashlib.sha256).hexdigest()
    if len(raw) < JWT_SECRET_MIN:
        raise ConfigError(f"JWT_SECRET must be at least {JWT_SECRET_MIN} characters long")
    return raw


def _jwt_algorithm(env: Mapping[str, str]) -> str:
    raw = _blank_to_none(env.get("JWT_ALGORITHM"))
    if raw is None:
        return "HS256"
    if raw.upper() not in JWT_ALGORITHMS:
        raise ConfigError(f"JWT_ALGORITHM must be one of {', '.join(JWT_ALGORITHMS)}, got {raw!r}")
    return raw.upper()


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _blank_to_none(env.get(name))
    if raw is None:
        return default
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be one of true, false (or 1, 0, yes, no, on, off), got {raw!r}")


def _rate_limit(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """A rate such as `5 per minute`, `30/hour` or `10 per 5 minutes` (the `limits` library's
    notation); `off` (or 0) turns the limit off (None)."""
    from limits import parse_many

    raw = _blank_to_none(env.get(name))
    if raw is None:
        return default
    if raw.lower() in ("off", "0", "none"):
        return None
    try:
        items = parse_many(raw)
    except ValueError:
        items = []
    if len(items) != 1 or items[0].amount < 1:
        raise ConfigError(
            f"{name} must be a rate such as '5 per minute' or '30/hour' (or off), got {raw!r}"
        )
    return raw


def _origins(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Comma-separated origins (`https://host[:port]`, no path)."""
    raw = _blank_to_none(env.get(name))
    if raw is None:
        return ()
    origins = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        parsed = urlparse(part)
        if (
            parsed.scheme not in ("http", "https")
            or not parsed.netloc
            or parsed.path not in ("", "/")
        ):
            raise ConfigError(f"{name} holds {part!r}, which is not an origin like https://host")
        origins.append(f"{parsed.scheme}://{parsed.netloc}".lower())
    return tuple(origins)


def _token(env: Mapping[str, str], name: str) -> str | None:
    raw = _blank_to_none(env.get(name))
    if raw is not None and len(raw) < 16:
        raise ConfigError(f"{name} must be at least 16 characters long")
    return raw


# The security settings (docs/security.md documents each; a test checks).
SECURITY_ENV_NAMES = (
    "SIGN_IN_LIMIT_ACCOUNT",
    "SIGN_IN_LIMIT_ADDRESS",
    "LOCKOUT_THRESHOLD",
    "LOCKOUT_MINUTES",
    "REMEMBER_COOKIE_DAYS",
    "SESSION_COOKIE_SECURE",
    "PREFERRED_URL_SCHEME",
    "PROXY_FIX_HOPS",
    "SOCKETIO_ORIGINS",
    "HEALTH_TOKEN",
    "CAMPAIGN_CREATE_LIMIT",
    "CAMPAIGN_CAP_PER_USER",
)

# Every variable `load_settings` reads (a test checks the two agree): `create_app(config)`
# treats these keys of `config` as environment overrides and the rest as Flask settings.
ENV_NAMES = frozenset(
    {
        "DATABASE_URL",
        "REDIS_URL",
        "SECRET_KEY",
        "IMAGEKIT_PRIVATE_KEY",
        "IMAGEKIT_PUBLIC_KEY",
        "IMAGEKIT_URL_ENDPOINT",
        "IMAGEKIT_BASE_URL",
        "IMAGE_SHARING",
        "IMAGE_MAX_BYTES",
        "POOL_MASTER_TARGET",
        "POOL_USER_TARGET",
        "POOL_LOW_WATERMARK",
        "POOL_FALLBACK",
        "POOL_BUILD_TIMEOUT",
        "POOL_MAX_PARALLEL_BUILDS",
        "POOL_ASSIGNMENT",
        "MAIL_SERVER",
        "MAIL_PORT",
        "MAIL_DEFAULT_SENDER",
        "ALERT_EMAILS",
        "SLACK_WEBHOOK_URL",
        "ALERT_COOLDOWN_MINUTES",
        "API_TOKEN_TTL_DAYS",
        *SECURITY_ENV_NAMES,
        "METRICS_TOKEN",
        "JWT_SECRET",
        "JWT_ALGORITHM",
        "JWT_LIFETIME_HOURS",
        "CORS_ORIGINS",
    }
)


def load_settings(
    env: Mapping[str, str] | None = None, instance_path: Path | None = None
) -> Settings:
    """Read and validate the environment; raise ConfigError naming the first bad variable."""
    env = os.environ if env is None else env
    instance_path = instance_path or Path.cwd() / "instance"
    private_key = _blank_to_none(env.get("IMAGEKIT_PRIVATE_KEY"))
    url_endpoint = _http_url(env, "IMAGEKIT_URL_ENDPOINT")
    if private_key and not url_endpoint:
        raise ConfigError("IMAGEKIT_URL_ENDPOINT must be set when IMAGEKIT_PRIVATE_KEY is set")
    master_target = _int(env, "POOL_MASTER_TARGET", 5)
    low_watermark = _int(env, "POOL_LOW_WATERMARK", min(2, master_target))
    if low_watermark > master_target:
        raise ConfigError(
            f"POOL_LOW_WATERMARK ({low_watermark}) must not exceed POOL_MASTER_TARGET "
            f"({master_target})"
        )
    mail_sender = _blank_to_none(env.get("MAIL_DEFAULT_SENDER")) or "campaign-pool@localhost"
    if "@" not in mail_sender:
        raise ConfigError(f"MAIL_DEFAULT_SENDER must be an email address, got {mail_sender!r}")
    secret_key = _secret_key(env, instance_path)
    jwt_secret, jwt_algorithm = _jwt_secret(env, secret_key), _jwt_algorithm(env)
    if jwt_algorithm == "HS512" and len(jwt_secret) < 64:
        raise ConfigError("JWT_SECRET must be at least 64 characters long for HS512 (RFC 7518)")
    return Settings(
        database_url=_database_url(env, instance_path),
        redis_url=_redis_url(env),
        secret_key=secret_key,
        imagekit_private_key=private_key,
        imagekit_public_key=_blank_to_none(env.get("IMAGEKIT_PUBLIC_KEY")),
        imagekit_url_endpoint=url_endpoint,
        imagekit_base_url=_http_url(env, "IMAGEKIT_BASE_URL"),
        image_sharing=_choice(env, "IMAGE_SHARING", ("share", "copy"), "share"),
        image_max_bytes=_int(
            env, "IMAGE_MAX_BYTES", 25 * 1024 * 1024, minimum=1024, maximum=1024 * 1024 * 1024
        ),
        pool_master_target=master_target,
        pool_user_target=_int(env, "POOL_USER_TARGET", 1),
        pool_low_watermark=low_watermark,
        pool_fallback=_choice(env, "POOL_FALLBACK", ("sync", "async"), "sync"),
        mail_server=_blank_to_none(env.get("MAIL_SERVER")),
        mail_port=_int(env, "MAIL_PORT", 25, minimum=1, maximum=65535),
        mail_default_sender=mail_sender,
        alert_emails=_emails(env, "ALERT_EMAILS"),
        slack_webhook_url=_http_url(env, "SLACK_WEBHOOK_URL", secret=True),
        alert_cooldown_minutes=_int(env, "ALERT_COOLDOWN_MINUTES", 30, minimum=0, maximum=10080),
        api_token_ttl_days=_int(env, "API_TOKEN_TTL_DAYS", 365, minimum=0, maximum=36500),
        pool_build_timeout_s=_int(env, "POOL_BUILD_TIMEOUT", 600, minimum=1, maximum=86400),
        jwt_secret=jwt_secret,
        jwt_algorithm=jwt_algorithm,
        jwt_lifetime_hours=_int(env, "JWT_LIFETIME_HOURS", 168, minimum=1, maximum=8760),
        cors_origins=_origins(env, "CORS_ORIGINS"),
        pool_max_parallel_builds=_int(env, "POOL_MAX_PARALLEL_BUILDS", 10, minimum=1, maximum=50),
        pool_assignment=_choice(env, "POOL_ASSIGNMENT", ("on", "off"), "on") == "on",
        sign_in_limit_account=_rate_limit(env, "SIGN_IN_LIMIT_ACCOUNT", "5 per minute"),
        sign_in_limit_address=_rate_limit(env, "SIGN_IN_LIMIT_ADDRESS", "20 per minute"),
        lockout_threshold=_int(env, "LOCKOUT_THRESHOLD", 10, minimum=0, maximum=1000),
        lockout_minutes=_int(env, "LOCKOUT_MINUTES", 15, minimum=1, maximum=10080),
        remember_cookie_days=_int(env, "REMEMBER_COOKIE_DAYS", 14, minimum=1, maximum=365),
        session_cookie_secure=_bool(env, "SESSION_COOKIE_SECURE", False),
        preferred_url_scheme=_choice(env, "PREFERRED_URL_SCHEME", ("http", "https"), "http"),
        proxy_fix_hops=_int(env, "PROXY_FIX_HOPS", 0, minimum=0, maximum=10),
        socketio_origins=_origins(env, "SOCKETIO_ORIGINS"),
        health_token=_token(env, "HEALTH_TOKEN"),
        campaign_create_limit=_rate_limit(env, "CAMPAIGN_CREATE_LIMIT", "30 per hour"),
        campaign_cap_per_user=_int(env, "CAMPAIGN_CAP_PER_USER", 200, minimum=0, maximum=10**6),
        metrics_token=_metrics_token(env),
    )
