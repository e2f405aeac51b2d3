from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from flask import Flask
from sqlalchemy.exc import IntegrityError

from lti_proctor.extensions import db
from lti_proctor.lti import keys
from lti_proctor.lti.keys import KeyStatus, ToolKey, ToolKeyError

NOW = datetime(2030, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


def published_kids(now: datetime) -> list[str]:
    return [jwk["kid"] for jwk in keys.public_jwks(now)["keys"]]


def test_first_start_creates_exactly_one_current_rsa_2048_key(ctx: None) -> None:
    stored = keys.find_keys()
    assert [k.status for k in stored] == ["current"]
    kid, private_key = keys.get_signing_key()
    assert kid == stored[0].kid
    assert isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size == 2048
    jwk = stored[0].public_jwk
    assert (jwk["kty"], jwk["alg"], jwk["use"], jwk["kid"]) == ("RSA", "RS256", "sig", kid)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()


def test_a_signed_token_verifies_with_the_published_key_set(ctx: None) -> None:
    kid, private_key = keys.get_signing_key()
    token = jwt.encode({"iss": "tool"}, private_key, algorithm="RS256", headers={"kid": kid})

    keyset = jwt.PyJWKSet.from_dict(keys.public_jwks(datetime.now(UTC)))
    header_kid = jwt.get_unverified_header(token)["kid"]
    public = next(k for k in keyset.keys if k.key_id == header_kid)
    assert jwt.decode(token, public.key, algorithms=["RS256"]) == {"iss": "tool"}


def test_rotate_makes_new_key_current_and_keeps_previous_published_for_the_grace(
    ctx: None,
) -> None:
    old_kid, _ = keys.get_signing_key()

    new = keys.rotate_keys(now=NOW, grace_days=7)
    db.session.commit()

    assert keys.get_signing_key()[0] == new.kid != old_kid
    old = db.session.execute(sa.select(ToolKey).where(ToolKey.kid == old_kid)).scalar_one()
    assert old.status == KeyStatus.RETIRING
    assert published_kids(NOW + timedelta(days=6, hours=23)) == [new.kid, old_kid]
    assert published_kids(NOW + timedelta(days=7)) == [new.kid]


def test_public_jwks_skips_expired_key_even_before_it_is_pruned(ctx: None) -> None:
    old_kid, _ = keys.get_signing_key()
    new = keys.rotate_keys(now=NOW, grace_days=0)
    db.session.commit()

    assert published_kids(NOW) == [new.kid]
    assert old_kid in [k.kid for k in keys.find_keys()]


def test_rotate_drops_keys_past_their_grace(ctx: None) -> None:
    first_kid, _ = keys.get_signing_key()
    second = keys.rotate_keys(now=NOW, grace_days=1)
    third = keys.rotate_keys(now=NOW + timedelta(days=2), grace_days=1)
    db.session.commit()

    assert [(k.kid, k.status) for k in keys.find_keys()] == [
        (third.kid, "current"),
        (second.kid, "retiring"),
    ]
    assert first_kid not in published_kids(NOW + timedelta(days=2))


def test_prune_drops_only_retiring_keys_past_their_grace(ctx: None) -> None:
    first_kid, _ = keys.get_signing_key()
    second = keys.rotate_keys(now=NOW, grace_days=1)
    third = keys.rotate_keys(now=NOW + timedelta(hours=12), grace_days=5)
    db.session.commit()

    assert keys.prune_keys(now=NOW + timedelta(days=1)) == [first_kid]
    db.session.commit()
    assert {k.kid for k in keys.find_keys()} == {second.kid, third.kid}
    assert keys.prune_keys(now=NOW + timedelta(days=1)) == []


def test_only_one_key_can_be_current(ctx: None) -> None:
    db.session.add(
        ToolKey(
            kid="intruder",
            private_key_pem="x",
            public_jwk={},
            status=KeyStatus.CURRENT.value,
            created_at=NOW,
        )
    )
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_signing_key_is_parsed_once_per_kid(ctx: None, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = keys.load_pem_private_key

    def counting(data: bytes, password: bytes | None) -> object:
        calls.append(data)
        return real(data, password)

    monkeypatch.setattr(keys, "_PARSED", {})  # as in a fresh worker process
    monkeypatch.setattr(keys, "load_pem_private_key", counting)

    first = keys.get_signing_key()
    second = keys.get_signing_key()

    assert first[0] == second[0] and first[1] is second[1]
    assert len(calls) == 1


def test_signing_key_follows_a_rotation_committed_elsewhere(
    ctx: None, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_kid, _ = keys.get_signing_key()
    with app.app_context():  # a separate session, as another worker process would have
        new = keys.rotate_keys(now=NOW, grace_days=1)
        new_kid, new_n = new.kid, new.public_jwk["n"]
        db.session.commit()
    monkeypatch.setattr(keys, "_PARSED", {})

    kid, private_key = keys.get_signing_key()

    assert kid == new_kid != old_kid
    n = int.from_bytes(jwt.utils.base64url_decode(new_n), "big")
    assert private_key.public_key().public_numbers().n == n


def test_without_a_current_key_signing_says_how_to_fix_it(ctx: None) -> None:
    db.session.execute(sa.delete(ToolKey))
    with pytest.raises(ToolKeyError, match="keys rotate"):
        keys.get_signing_key()


def test_rotate_refuses_negative_grace(ctx: None) -> None:
    with pytest.raises(ValueError, match="grace_days"):
        keys.rotate_keys(now=NOW, grace_days=-1)


def test_key_repr_shows_no_private_material(ctx: None) -> None:
    (key,) = keys.find_keys()
    assert "PRIVATE" not in repr(key) and key.kid in repr(key)


def _n_of(pem: str) -> int:
    loaded = load_pem_private_key(pem.encode("ascii"), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded.public_key().public_numbers().n


def test_first_start_takes_the_first_key_pem_when_given(ctx: None, first_key_pem: str) -> None:
    (stored,) = keys.find_keys()
    kid, private_key = keys.get_signing_key()

    assert kid == stored.kid
    assert private_key.public_key().public_numbers().n == _n_of(first_key_pem)


def test_first_start_without_a_first_key_pem_generates_its_own_key(
    app_config: dict[str, Any], request: pytest.FixtureRequest, first_key_pem: str
) -> None:
    app_config["LTI_FIRST_KEY_PEM"] = None
    app: Flask = request.getfixturevalue("app")

    with app.app_context():
        (stored,) = keys.find_keys()
        _, private_key = keys.get_signing_key()
    assert stored.status == "current" and private_key.key_size == 2048
    assert private_key.public_key().public_numbers().n != _n_of(first_key_pem)


@pytest.mark.parametrize(
    "pem",
    [
        pytest.param("not a key", id="not-pem"),
        pytest.param(
            rsa.generate_private_key(public_exponent=65537, key_size=1024)
            .private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            .decode(),
            id="rsa-1024",
        ),
    ],
)
def test_unusable_first_key_pem_is_refused_naming_the_setting(ctx: None, pem: str) -> None:
    db.session.execute(sa.delete(ToolKey))

    with pytest.raises(ValueError, match="LTI_FIRST_KEY_PEM"):
        keys.ensure_current_key(now=NOW, first_key_pem=pem)
    assert keys.find_keys() == []
