"""The production guardrails: with PRODUCTION on, the settings a start refuses, each with the one
line that says what to set. (The sandbox proctoring rules live in sandbox/policy.py.)"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from lti_proctor.config import ENV_PREFIX, ConfigError

SECRET_KEY_MIN_LENGTH = 32
_MAKE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


class ProductionConfigError(ConfigError):
    """PRODUCTION is on but a setting is only fit for development."""


def _is_loopback(host: str) -> bool:
    """True for localhost names and loopback or unspecified addresses."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def production_problem(config: Mapping[str, Any]) -> str | None:
    """What to set for a production start, or None when the settings are fit for it."""
    on = f"{ENV_PREFIX}_PRODUCTION is on"
    if str(config.get("SQLALCHEMY_DATABASE_URI") or "").startswith("sqlite"):
        return (
            f"{on} but the database is SQLite: set {ENV_PREFIX}_DATABASE_URL to a PostgreSQL "
            "database (postgresql+psycopg://user@host/dbname)"
        )
    secret = config.get("SECRET_KEY")
    if not secret or len(str(secret)) < SECRET_KEY_MIN_LENGTH:
        state = "unset" if not secret else f"shorter than {SECRET_KEY_MIN_LENGTH} characters"
        return (
            f"{on} but {ENV_PREFIX}_SECRET_KEY is {state}: set it to one random value shared by "
            f"every instance (e.g. the output of {_MAKE_SECRET})"
        )
    base = urlsplit(str(config.get("BASE_URL") or ""))
    if base.scheme != "https" or not base.hostname or _is_loopback(base.hostname):
        shown = f"{base.scheme}://{base.netloc.rpartition('@')[2]}" if base.scheme else "unset"
        return (
            f"{on} but {ENV_PREFIX}_BASE_URL is {shown}: set it to the "
            "tool's public https URL (e.g. https://tool.example.edu)"
        )
    if config.get("DEV_INSECURE_COOKIES"):
        return f"{on} but so is {ENV_PREFIX}_DEV_INSECURE_COOKIES: set it to false"
    return None


def check_production(config: Mapping[str, Any]) -> None:
    """Raise ProductionConfigError when PRODUCTION is on and a setting is unfit for it."""
    if not config.get("PRODUCTION"):
        return
    problem = production_problem(config)
    if problem is not None:
        raise ProductionConfigError(problem)
