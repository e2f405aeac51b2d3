from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from flask import Flask
from flask.testing import FlaskClient

from lti_proctor.extensions import db
from lti_proctor.lti import keys

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


def rotate(app: Flask, *, grace_days: int, now: datetime | None = None) -> str:
    with app.app_context():
        kid = keys.rotate_keys(now=now or datetime.now(UTC), grace_days=grace_days).kid
        db.session.commit()
    return kid


def test_jwks_serves_the_current_public_key_as_cacheable_json(
    app: Flask, client: FlaskClient
) -> None:
    resp = client.get("/.well-known/jwks.json")

    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.cache_control.public and 60 <= (resp.cache_control.max_age or 0) <= 600
    with app.app_context():
        current_kid, _ = keys.get_signing_key()
    (jwk,) = resp.json["keys"]  # type: ignore[index]
    assert jwk["kid"] == current_kid
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert not PRIVATE_MEMBERS & jwk.keys()


def test_jwks_verifies_a_token_the_tool_signed(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        kid, private_key = keys.get_signing_key()
    token = jwt.encode({"sub": "tool"}, private_key, algorithm="RS256", headers={"kid": kid})

    keyset = jwt.PyJWKSet.from_dict(client.get("/.well-known/jwks.json").json)  # type: ignore[arg-type]

    assert jwt.decode(token, keyset[kid].key, algorithms=["RS256"]) == {"sub": "tool"}


def test_jwks_serves_the_retiring_key_during_its_grace(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        old_kid, _ = keys.get_signing_key()
    new_kid = rotate(app, grace_days=7)

    served = [k["kid"] for k in client.get("/.well-known/jwks.json").json["keys"]]  # type: ignore[index]

    assert served == [new_kid, old_kid]


def test_jwks_stops_serving_a_key_past_its_grace(app: Flask, client: FlaskClient) -> None:
    with app.app_context():
        old_kid, _ = keys.get_signing_key()
    new_kid = rotate(app, grace_days=1, now=datetime.now(UTC) - timedelta(days=2))

    served = [k["kid"] for k in client.get("/.well-known/jwks.json").json["keys"]]  # type: ignore[index]

    assert served == [new_kid]
    assert old_kid not in served
