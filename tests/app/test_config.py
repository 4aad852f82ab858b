"""Settings: every variable of docs/configuration.md is optional, and a bad value stops start-up
with a message that names the variable (and no traceback) instead of failing later, elsewhere."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portal.config import ConfigError, load_settings, normalize_database_url
from tests.support import PROJECT_ROOT

ROOT = PROJECT_ROOT
GOOD_KEY = "k" * 32


def settings(tmp_path: Path, **env: str):
    return load_settings({"SECRET_KEY": GOOD_KEY, **env}, tmp_path)


def test_defaults_need_no_environment(tmp_path: Path) -> None:
    s = load_settings({}, tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path / 'campaign_pool.sqlite3'}"
    assert s.redis_url is None and s.embedded_queue
    assert s.image_service == "local" and s.image_sharing == "share"
    assert (s.pool_master_target, s.pool_user_target, s.pool_low_watermark) == (5, 1, 2)
    assert s.pool_fallback == "sync"
    assert s.alert_emails == ()
    assert s.pool_build_timeout_s == 600


def test_generated_secret_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = load_settings({}, tmp_path).secret_key
    key_file = tmp_path / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert load_settings({}, tmp_path).secret_key == first


def test_blank_values_count_as_unset(tmp_path: Path) -> None:
    s = settings(tmp_path, REDIS_URL="  ", POOL_MASTER_TARGET="", IMAGE_SHARING=" ")
    assert s.redis_url is None and s.pool_master_target == 5 and s.image_sharing == "share"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"POOL_MASTER_TARGET": "abc"}, "POOL_MASTER_TARGET must be an integer"),
        ({"POOL_MASTER_TARGET": "2.5"}, "POOL_MASTER_TARGET must be an integer"),
        ({"POOL_USER_TARGET": "-1"}, "POOL_USER_TARGET must be at least 0"),
        ({"POOL_LOW_WATERMARK": "-3"}, "POOL_LOW_WATERMARK must be at least 0"),
        ({"MAIL_PORT": "0"}, "MAIL_PORT must be at least 1"),
        ({"POOL_BUILD_TIMEOUT": "0"}, "POOL_BUILD_TIMEOUT must be at least 1"),
        ({"MAIL_PORT": "70000"}, "MAIL_PORT must be at most 65535"),
        ({"MAIL_PORT": "smtp"}, "MAIL_PORT must be an integer"),
        (
            {"POOL_MASTER_TARGET": "3", "POOL_LOW_WATERMARK": "4"},
            "POOL_LOW_WATERMARK (4) must not exceed POOL_MASTER_TARGET (3)",
        ),
        ({"IMAGE_SHARING": "link"}, "IMAGE_SHARING must be one of share, copy"),
        ({"IMAGE_MAX_BYTES": "25MB"}, "IMAGE_MAX_BYTES must be an integer"),
        ({"IMAGE_MAX_BYTES": "10"}, "IMAGE_MAX_BYTES must be at least 1024"),
        ({"POOL_FALLBACK": "never"}, "POOL_FALLBACK must be one of sync, async"),
        ({"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL must be a postgresql:// or sqlite://"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL is not a database URL"),
        ({"REDIS_URL": "http://127.0.0.1:6379"}, "REDIS_URL must be a redis://"),
        ({"SLACK_WEBHOOK_URL": "hooks.slack.com/x"}, "SLACK_WEBHOOK_URL must be an http(s) URL"),
        ({"SLACK_WEBHOOK_URL": "ftp://hooks.example/x"}, "SLACK_WEBHOOK_URL must be an http(s)"),
        ({"IMAGEKIT_BASE_URL": "localhost:9000"}, "IMAGEKIT_BASE_URL must be an http(s) URL"),
        (
            {"IMAGEKIT_PRIVATE_KEY": "private_x", "IMAGEKIT_URL_ENDPOINT": "https://"},
            "IMAGEKIT_URL_ENDPOINT must be an http(s) URL",
        ),
        (
            {"IMAGEKIT_PRIVATE_KEY": "private_x"},
            "IMAGEKIT_URL_ENDPOINT must be set when IMAGEKIT_PRIVATE_KEY is set",
        ),
        ({"ALERT_EMAILS": "ops@example.com, not-an-email"}, "ALERT_EMAILS holds an invalid"),
        ({"ALERT_EMAILS": "a b@example.com"}, "ALERT_EMAILS holds an invalid"),
        ({"MAIL_DEFAULT_SENDER": "campaign-pool"}, "MAIL_DEFAULT_SENDER must be an email"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be at least 16 characters"),
    ],
)
def test_bad_values_name_the_variable(tmp_path: Path, env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, **env)
    assert fragment in str(info.value)


def test_short_secret_key_is_not_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, SECRET_KEY="hunter2-secret")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/services/T0/B0/slack secret",
        "https://hooks.example.com/services/T0/B0/slack\tsecret",
        "hooks.example.com/services/T0/B0/slack-secret",
    ],
)
def test_a_bad_webhook_url_is_refused_without_echoing_it(tmp_path: Path, url: str) -> None:
    """The webhook's path is its credential: a refused value is named, never shown."""
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, SLACK_WEBHOOK_URL=url)
    assert "SLACK_WEBHOOK_URL" in str(info.value)
    assert "secret" not in str(info.value) and "B0" not in str(info.value)


def test_a_url_with_a_space_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        settings(tmp_path, IMAGEKIT_BASE_URL="http://localhost:9000/a b")
    assert "IMAGEKIT_BASE_URL must not contain spaces" in str(info.value)


def test_good_values_are_typed(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        POOL_MASTER_TARGET=" 8 ",
        POOL_USER_TARGET="0",
        POOL_LOW_WATERMARK="8",
        POOL_FALLBACK="ASYNC",
        IMAGE_SHARING="Copy",
        MAIL_PORT="2525",
        POOL_BUILD_TIMEOUT="30",
        IMAGE_MAX_BYTES="52428800",
        ALERT_EMAILS="ops@example.com, oncall@example.org,",
        SLACK_WEBHOOK_URL="https://hooks.example.com/services/x/",
        IMAGEKIT_PRIVATE_KEY="private_x",
        IMAGEKIT_URL_ENDPOINT="https://ik.example.com/demo/",
        REDIS_URL="redis://127.0.0.1:6379/3",
    )
    assert (s.pool_master_target, s.pool_user_target, s.pool_low_watermark) == (8, 0, 8)
    assert s.pool_fallback == "async" and s.image_sharing == "copy" and s.mail_port == 2525
    assert s.pool_build_timeout_s == 30 and s.image_max_bytes == 50 * 1024 * 1024
    assert s.alert_emails == ("ops@example.com", "oncall@example.org")
    assert s.slack_webhook_url == "https://hooks.example.com/services/x"
    assert s.imagekit_url_endpoint == "https://ik.example.com/demo"
    assert s.image_service == "imagekit"
    assert not s.embedded_queue


def test_low_watermark_defaults_below_a_small_target(tmp_path: Path) -> None:
    assert settings(tmp_path, POOL_MASTER_TARGET="1").pool_low_watermark == 1
    assert settings(tmp_path, POOL_MASTER_TARGET="0").pool_low_watermark == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql+psycopg://u:p@db:5432/app"),
        ("postgresql://u:p@db/app", "postgresql+psycopg://u:p@db/app"),
        ("postgresql+psycopg2://u@db/app", "postgresql+psycopg://u@db/app"),
        ("postgresql+psycopg://u@db/app", "postgresql+psycopg://u@db/app"),
        ("sqlite:////tmp/x.sqlite3", "sqlite:////tmp/x.sqlite3"),
    ],
)
def test_database_urls_are_normalized_to_psycopg3(raw: str, expected: str) -> None:
    assert normalize_database_url(raw) == expected


def test_postgres_scheme_from_the_environment_is_normalized(tmp_path: Path) -> None:
    s = settings(tmp_path, DATABASE_URL="postgres://app:s3cret@db.internal/pool")
    assert s.database_url == "postgresql+psycopg://app:s3cret@db.internal/pool"
    assert s.flask_config()["SQLALCHEMY_DATABASE_URI"] == s.database_url


def test_redacted_settings_hide_every_secret(tmp_path: Path) -> None:
    s = settings(
        tmp_path,
        DATABASE_URL="postgresql://app:db-pass-123@db/pool",
        REDIS_URL="redis://:redis-pass-456@cache:6379/0",
        IMAGEKIT_PRIVATE_KEY="private_ik_789",
        IMAGEKIT_URL_ENDPOINT="https://ik.example.com/x",
        SLACK_WEBHOOK_URL="https://hooks.example.com/services/T0/B0/slack-secret",
    )
    shown = repr(s.redacted())
    for secret in ("db-pass-123", "redis-pass-456", "private_ik_789", "slack-secret", GOOD_KEY):
        assert secret not in shown
    assert "db/pool" in shown and "cache:6379" in shown


def _run_flask(
    args: list[str], env_extra: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POOL_", "DATABASE_", "REDIS"))}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", str(ROOT / "app.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_refuses_to_start_with_a_bad_value(tmp_path: Path) -> None:
    result = _run_flask(["routes"], {"POOL_MASTER_TARGET": "abc"}, tmp_path)
    assert result.returncode != 0
    assert "POOL_MASTER_TARGET" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "/health" not in result.stdout  # it did not go on to list the routes


def test_cli_starts_with_good_values(tmp_path: Path) -> None:
    """The same command with a valid value runs, so the failure above is the value's doing."""
    result = _run_flask(["routes"], {"POOL_MASTER_TARGET": "7"}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "/health" in result.stdout
