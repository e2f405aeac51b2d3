"""When the tool may talk to the sandbox proctoring service: the start-up check that keeps the
sandbox a development aid, never a silent stand-in for the real service in production.

Rules (checked by create_app right after the settings are loaded):
- SANDBOX_PROCTORING defaults to on only without a TRUSTEXAM_API_KEY and outside PRODUCTION
  (config._derive). With a real key it is off, and turning it on by hand is refused, so a real
  key is never sent to a sandbox. Keys the demo generates start with SANDBOX_KEY_PREFIX.
- In PRODUCTION the sandbox is refused unless SANDBOX_PROCTORING_ALLOW_PRODUCTION is also set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lti_proctor.config import ConfigError

SANDBOX_KEY_PREFIX = "sandbox-"


class SandboxPolicyError(ConfigError):
    """The settings turn on the sandbox proctoring service where it must not run."""


def is_sandbox_key(key: object) -> bool:
    """True for an API key minted for the sandbox service (never a real TrustExam key)."""
    return isinstance(key, str) and key.startswith(SANDBOX_KEY_PREFIX)


def check_sandbox_policy(config: Mapping[str, Any]) -> None:
    """Raise SandboxPolicyError when SANDBOX_PROCTORING is on where the rules above forbid it."""
    if not config.get("SANDBOX_PROCTORING"):
        return
    for name in ("TRUSTEXAM_API_KEY", "TRUSTEXAM_REPORT_API_KEY"):
        key = config.get(name)
        if key and not is_sandbox_key(key):
            raise SandboxPolicyError(
                f"SANDBOX_PROCTORING is on but {name} is a real key: unset SANDBOX_PROCTORING "
                "to use the real proctoring service (the sandbox never gets a real key)"
            )
    if config.get("PRODUCTION") and not config.get("SANDBOX_PROCTORING_ALLOW_PRODUCTION"):
        raise SandboxPolicyError(
            "SANDBOX_PROCTORING is on in PRODUCTION: the sandbox proctoring service is a "
            "development aid; configure TRUSTEXAM_API_KEY, or set "
            "SANDBOX_PROCTORING_ALLOW_PRODUCTION=True to run it there on purpose"
        )
