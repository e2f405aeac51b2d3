"""Settings: the safe defaults and the loading order (defaults < instance file < env < overrides).

Secrets never have a real default here: the secret key is generated into instance/ on first start.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

ENV_PREFIX = "LTI_PROCTOR"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Defaults:
    """Embedded defaults: SQLite under instance/, sandbox proctoring, safe timeouts."""

    BASE_URL = "http://127.0.0.1:5000"
    DATABASE_URL: str | None = None  # None -> sqlite file under instance/
    SECRET_KEY: str | None = None  # None -> generated into instance/secret_key
    REDIS_URL: str | None = None  # None -> the database serves as the shared store
    AUTO_SETUP = True  # create tables and the first tool key on start
    PRODUCTION = False

    # Cookies: LTI pages live in LMS iframes, so cookies must be SameSite=None; Secure.
    # DEV_INSECURE_COOKIES lets plain http on localhost work (demo, tests); never in production.
    DEV_INSECURE_COOKIES = False

    LTI_LEEWAY_S = 30  # clock skew allowed on exp/iat
    LTI_NONCE_TTL_S = 900  # how long an issued nonce may wait for its launch
    LTI_STATE_TTL_S = 900
    LTI_MAX_TOKEN_AGE_S = 3600  # an id_token issued longer ago (plus the leeway) is refused
    LTI_JWKS_CACHE_S = 3600  # platform key sets are refetched after this, or on an unknown kid
    # An unknown kid waits for a key set fetched after it arrived; refetches of one key set are
    # at least this far apart, whoever asks (forged kids cannot use up a genuine one's refetch).
    LTI_JWKS_REFETCH_COOLDOWN_S = 2.0
    LTI_HTTP_TIMEOUT_S = 5.0
    LTI_KEY_GRACE_DAYS = 7  # a rotated-out tool key stays published this long
    LTI_REGISTER_MAX_BYTES = 262144  # largest platform configuration / registration answer read
    LTI_INVITE_DEFAULT_EXPIRY = "7d"  # `platform invite` without --expires

    # Every request body is bounded: bigger ones get a 413 before they are read into memory.
    # Launch forms and webhooks are a few KB; 1 MiB leaves room for the exam page's event batches.
    MAX_CONTENT_LENGTH = 1024 * 1024

    PROCTOR_TIMEOUT_S = 10
    PROCTOR_PROFILES_DIR = str(PROJECT_ROOT / "configs" / "profiles")
    PROCTOR_DEFAULT_PROFILE = "standard"

    TRUSTEXAM_API_BASE = "https://api.trustexam.ai/api"
    TRUSTEXAM_API_KEY: str | None = None
    TRUSTEXAM_SDK_URL = "https://cdn.trustexam.ai/extension/app.js"
    TRUSTEXAM_REPORT_BASE = "https://trust-rating.trustexam.ai/api/v1"
    TRUSTEXAM_REPORT_API_KEY: str | None = None  # defaults to TRUSTEXAM_API_KEY
    TRUSTEXAM_AUTH_MODE = "header"
    # None -> on when no real API key is configured and not in production.
    SANDBOX_PROCTORING: bool | None = None
    SANDBOX_PROCTORING_ALLOW_PRODUCTION = False  # sandbox/policy.py refuses it in PRODUCTION
    SANDBOX_LMS = False

    OUTBOX_MAX_ATTEMPTS = 8
    OUTBOX_BASE_DELAY_S = 30
    OUTBOX_STALL_AFTER_S = 300
    # None -> on with the embedded SQLite database (one worker thread inside the server), off
    # with a configured database, where `lti-proctor worker` processes do the work.
    OUTBOX_EMBEDDED_WORKER: bool | None = None
    OUTBOX_EMBEDDED_WORKER_IN_TESTS = False  # under TESTING the thread starts only if this is on
    OUTBOX_MAX_DELAY_S = 3600  # backoff never waits longer (unless the LMS asks, Retry-After)
    OUTBOX_POLL_INTERVAL_S = 1.0  # an idle worker looks for due jobs this often
    ATTEMPTS_RECONCILE_INTERVAL_S = 900  # the attempts.reconcile job runs again after this


class ConfigError(Exception):
    """The instance config file could not be loaded."""


def load_config(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    """Fill app.config in the documented order and derive the computed settings."""
    app.config.from_object(Defaults)
    _load_instance_file(app)
    app.config.from_prefixed_env(ENV_PREFIX)
    if overrides:
        app.config.update(overrides)
    _derive(app)


def _load_instance_file(app: Flask) -> None:
    """Read instance/config.py when present; a broken file is a ConfigError naming it."""
    path = Path(app.instance_path) / "config.py"
    try:
        app.config.from_pyfile("config.py", silent=True)
    except Exception as exc:
        raise ConfigError(
            f"cannot load the instance config file {path}: {type(exc).__name__}: {exc}"
        ) from exc


def _derive(app: Flask) -> None:
    cfg = app.config
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    if not cfg.get("SQLALCHEMY_DATABASE_URI"):
        cfg["SQLALCHEMY_DATABASE_URI"] = cfg.get("DATABASE_URL") or (
            f"sqlite:///{instance / 'lti_proctor.sqlite3'}"
        )
    if not cfg.get("SECRET_KEY"):
        cfg["SECRET_KEY"] = _instance_secret(instance / "secret_key")
    if cfg.get("OUTBOX_EMBEDDED_WORKER") is None:
        cfg["OUTBOX_EMBEDDED_WORKER"] = str(cfg["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite")
    cfg["BASE_URL"] = str(cfg["BASE_URL"]).rstrip("/")
    if not cfg.get("TRUSTEXAM_REPORT_API_KEY"):
        cfg["TRUSTEXAM_REPORT_API_KEY"] = cfg.get("TRUSTEXAM_API_KEY")
    if cfg.get("SANDBOX_PROCTORING") is None:
        cfg["SANDBOX_PROCTORING"] = not cfg.get("TRUSTEXAM_API_KEY") and not cfg["PRODUCTION"]
    insecure = bool(cfg["DEV_INSECURE_COOKIES"])
    cfg["SESSION_COOKIE_SAMESITE"] = "Lax" if insecure else "None"
    cfg["SESSION_COOKIE_SECURE"] = not insecure
    cfg.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})


def _instance_secret(path: Path) -> str:
    """Read the instance secret, creating it (mode 0600) on first start."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(value)
    return value
