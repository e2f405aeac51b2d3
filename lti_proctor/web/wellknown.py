"""The /.well-known documents of the tool: the public JWKS that platforms verify us with."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, jsonify

from lti_proctor.lti import keys

bp = Blueprint("wellknown", __name__)

# Platforms cache our key set; a few minutes keeps a freshly rotated key visible soon enough.
JWKS_MAX_AGE_S = 300


@bp.get("/.well-known/jwks.json")
def jwks():  # type: ignore[no-untyped-def]
    """The tool's public key set: the current key and every retiring key still in its grace."""
    response = jsonify(keys.public_jwks(datetime.now(UTC)))
    response.cache_control.public = True
    response.cache_control.max_age = JWKS_MAX_AGE_S
    return response
