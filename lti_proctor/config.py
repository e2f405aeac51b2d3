"""Settings: the safe defaults and the loading order (defaults < instance file < env < overrides).

Secrets never have a real default here: the secret key is generated into instance/ on first start.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, MutableMapping
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
    AUTO_SETUP = True  # create the first tool key on start (tables come from migrations)
    # None -> on with SQLite (the embedded default upgrades itself), off with PostgreSQL, where
    # `lti-proctor db upgrade` applies the migrations once and a start behind them is refused.
    AUTO_MIGRATE: bool | None = None
    # Seals tool private keys, webhook secrets and SDK tokens at rest (crypto.py): a Fernet key
    # or any passphrase; None -> derived from SECRET_KEY. OLD: earlier keys, comma-separated,
    # still accepted for reading until `lti-proctor keys rotate-encryption` has run.
    ENCRYPTION_KEY: str | None = None
    ENCRYPTION_KEY_OLD: str | None = None
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
    # Registrations and deployments are cached per process this long (0: off); a change made
    # anywhere reaches every process within LTI_REGISTRATION_CACHE_CHECK_S (shared-store version).
    LTI_REGISTRATION_CACHE_S = 30.0
    LTI_REGISTRATION_CACHE_CHECK_S = 1.0
    LTI_KEY_GRACE_DAYS = 7  # a rotated-out tool key stays published this long
    LTI_FIRST_KEY_PEM: str | None = None  # None -> the first tool key is generated
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
    # A retryable job (LMS or service down) keeps trying past OUTBOX_MAX_ATTEMPTS until it is
    # this old: an outage over a weekend drains once the LMS is back, instead of dying in an hour.
    OUTBOX_RETRY_HORIZON_S = 3 * 24 * 3600
    OUTBOX_POLL_INTERVAL_S = 1.0  # an idle worker looks for due jobs this often
    # On PostgreSQL an idle worker sleeps until NOTIFY (sent by enqueue) or the next due job,
    # and looks anyway after this long: the poll is only the fallback.
    OUTBOX_LISTEN_FALLBACK_S = 30.0
    OUTBOX_CLAIM_BATCH = 10  # jobs claimed per transaction
    OUTBOX_WORKER_NICE = 10  # `lti-proctor worker` lowers its OS priority by this (0: not)
    OUTBOX_KEEP_SUCCEEDED_DAYS = 7.0  # succeeded jobs are pruned after this age
    HOUSEKEEPING_INTERVAL_S = 300.0  # a worker purges expired store rows and old jobs this often

    LOG_FORMAT = "text"  # or "json": one object per line
    LOG_LEVEL = "INFO"
    # How many reverse proxies in front of the tool set X-Forwarded-For/-Proto/-Host/-Port
    # (0: trust none of them). One TLS proxy: 1.
    PROXY_FIX_HOPS = 0

    ATTEMPTS_RECONCILE_INTERVAL_S = 900  # the attempts.reconcile job runs again after this


# On/off settings; the environment's text is read strictly (see _parse_booleans). The optional
# ones (annotated `bool | None`) may stay None, which means "derive it" (see _derive).
OPTIONAL_BOOLEANS = frozenset(
    name for name, hint in Defaults.__annotations__.items() if str(hint) == "bool | None"
)
BOOLEAN_SETTINGS = OPTIONAL_BOOLEANS | {
    name for name, value in vars(Defaults).items() if isinstance(value, bool)
}
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class ConfigError(Exception):
    """The settings cannot be used: a broken instance file or an impossible value."""


def new_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """A bare Flask app for the tool, with its settings loaded (create_app adds the rest)."""
    instance_path = (overrides or {}).get("INSTANCE_PATH") or os.environ.get(
        f"{ENV_PREFIX}_INSTANCE_PATH"
    )
    app = Flask("lti_proctor", instance_path=instance_path, instance_relative_config=True)
    load_config(app, overrides)
    return app


def load_config(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    """Fill app.config in the documented order and derive the computed settings."""
    app.config.from_object(Defaults)
    _load_instance_file(app)
    app.config.from_prefixed_env(ENV_PREFIX)
    if overrides:
        app.config.update(overrides)
    _parse_booleans(app.config)
    _derive(app)


def parse_boolean(name: str, value: object) -> bool | None:
    """true/false, 1/0, yes/no (any case) as a bool; None stays None where it means "derive"."""
    if isinstance(value, bool) or (value is None and name in OPTIONAL_BOOLEANS):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(
        f"{ENV_PREFIX}_{name} must be true or false (or 1/0, yes/no), not {str(value)[:40]!r}"
    )


def _parse_booleans(cfg: MutableMapping[str, Any]) -> None:
    """Turn every on/off setting into a real bool: "False" from the environment is off."""
    for name in BOOLEAN_SETTINGS:
        if name in cfg:
            cfg[name] = parse_boolean(name, cfg[name])


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
    if not cfg.get("SECRET_KEY") and not cfg["PRODUCTION"]:
        # Production needs one fixed key shared by every instance (production.py refuses none).
        cfg["SECRET_KEY"] = _instance_secret(instance / "secret_key")
    on_sqlite = str(cfg["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite")
    if cfg.get("OUTBOX_EMBEDDED_WORKER") is None:
        cfg["OUTBOX_EMBEDDED_WORKER"] = on_sqlite
    if cfg.get("AUTO_MIGRATE") is None:
        cfg["AUTO_MIGRATE"] = on_sqlite
    cfg["BASE_URL"] = str(cfg["BASE_URL"]).rstrip("/")
    if not cfg.get("TRUSTEXAM_REPORT_API_KEY"):
        cfg["TRUSTEXAM_REPORT_API_KEY"] = cfg.get("TRUSTEXAM_API_KEY")
    if cfg.get("SANDBOX_PROCTORING") is None:
        cfg["SANDBOX_PROCTORING"] = not cfg.get("TRUSTEXAM_API_KEY") and not cfg["PRODUCTION"]
    insecure = cfg["DEV_INSECURE_COOKIES"]
    cfg["SESSION_COOKIE_SAMESITE"] = "Lax" if insecure else "None"
    cfg["SESSION_COOKIE_SECURE"] = not insecure
    engine_options = dict(cfg.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    # No pre-ping round trip per request: a pooled connection the server closed is found without
    # one (extensions.py); an operator may still turn SQLAlchemy's ping on here.
    engine_options.setdefault("pool_pre_ping", False)
    pool_set = {"pool_size", "max_overflow", "poolclass"} & set(engine_options)
    if str(cfg["SQLALCHEMY_DATABASE_URI"]).startswith("postgresql") and not pool_set:
        # At most 15 connections a process, as SQLAlchemy's 5 + 10 overflow, but all of them
        # kept: in a webhook storm the overflow ones were opened and closed around nearly every
        # request (a new PostgreSQL backend each time).
        engine_options.update(pool_size=15, max_overflow=0)
    # SQL errors must never carry the values (tokens, access codes) into a log or a page.
    engine_options["hide_parameters"] = True
    cfg["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options


def _instance_secret(path: Path) -> str:
    """Read the instance secret, creating it (mode 0600) on first start."""
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(value)
    return value
