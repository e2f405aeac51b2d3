from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from flask import Flask

from lti_proctor import create_app, crypto
from lti_proctor.attempts.models import Attempt
from lti_proctor.extensions import db
from lti_proctor.lti import keys
from lti_proctor.proctoring.profiles import get_profiles
from tests.factories import make_platform
from tests.factories_attempts import PROCTOR_CONFIG, make_attempt

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()


@pytest.fixture
def app_config(app_config):
    app_config.update(PROCTOR_CONFIG, ENCRYPTION_KEY=KEY_A)
    return app_config


def raw(app: Flask, sql: str) -> list[Any]:
    with app.app_context():
        return list(db.session.execute(sa.text(sql)).scalars())


def an_attempt(app: Flask) -> tuple[str, str, str]:
    with app.app_context():
        attempt = make_attempt(make_platform(), get_profiles(app)["standard"])
        db.session.commit()
        return attempt.id, attempt.webhook_secret, str(attempt.token)


def read_back(app: Flask, attempt_id: str) -> tuple[str, str | None, str]:
    with app.app_context():
        attempt = db.session.get(Attempt, attempt_id)
        assert attempt is not None
        kid, _ = keys.get_signing_key()
        return attempt.webhook_secret, attempt.token, kid


@pytest.fixture
def sibling(app_config: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """sibling(**settings): another process of the same deployment (same database)."""
    made: list[Flask] = []

    def make(**changes: Any) -> Flask:
        made.append(create_app({**app_config, "AUTO_SETUP": False, **changes}))
        return made[-1]

    yield make
    for other in made:
        store = other.extensions["lti_proctor_store"]
        if hasattr(store, "dispose"):
            store.dispose()
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


def test_secrets_are_sealed_in_the_database_and_open_in_the_app(app):
    attempt_id, secret, token = an_attempt(app)

    stored_secret = raw(app, "select webhook_secret from attempt")[0]
    stored_token = raw(app, "select token from attempt")[0]
    stored_pem = raw(app, "select private_key_pem from lti_tool_key")[0]
    for stored, plain in ((stored_secret, secret), (stored_token, token)):
        assert stored.startswith(crypto.PREFIX)
        assert plain not in stored
    assert stored_pem.startswith(crypto.PREFIX) and "PRIVATE KEY" not in stored_pem
    assert read_back(app, attempt_id)[:2] == (secret, token)


def test_wrong_key_is_a_clear_error_not_garbage(app, sibling):
    attempt_id, _, _ = an_attempt(app)
    other = sibling(ENCRYPTION_KEY=KEY_B)
    with pytest.raises(crypto.SealError, match="ENCRYPTION_KEY_OLD"):
        read_back(other, attempt_id)


def test_rotation_reseals_every_row_under_the_new_key(app, sibling):
    attempt_id, secret, token = an_attempt(app)
    before = raw(app, "select webhook_secret from attempt")[0]

    rotating = sibling(ENCRYPTION_KEY=KEY_B, ENCRYPTION_KEY_OLD=KEY_A)
    assert read_back(rotating, attempt_id)[:2] == (secret, token)  # old key still accepted
    result = rotating.test_cli_runner().invoke(args=["keys", "rotate-encryption"])
    assert result.exit_code == 0, result.output
    assert "attempt: 1 row(s) re-sealed" in result.output
    assert "lti_tool_key: 1 row(s) re-sealed" in result.output

    assert raw(app, "select webhook_secret from attempt")[0] != before
    only_new = sibling(ENCRYPTION_KEY=KEY_B)
    assert read_back(only_new, attempt_id)[:2] == (secret, token)
    with pytest.raises(crypto.SealError):
        read_back(sibling(ENCRYPTION_KEY=KEY_A), attempt_id)


def test_plaintext_rows_from_before_sealing_are_read_then_sealed_by_rotation(app):
    attempt_id, _, _ = an_attempt(app)
    with app.app_context():
        db.session.execute(
            sa.text("update attempt set webhook_secret = :s, token = :t"),
            {"s": "legacy-secret-value", "t": "legacy-sdk-value"},
        )
        db.session.commit()
    assert read_back(app, attempt_id)[:2] == ("legacy-secret-value", "legacy-sdk-value")

    result = app.test_cli_runner().invoke(args=["keys", "rotate-encryption"])

    assert result.exit_code == 0, result.output
    assert raw(app, "select webhook_secret from attempt")[0].startswith(crypto.PREFIX)
    assert read_back(app, attempt_id)[:2] == ("legacy-secret-value", "legacy-sdk-value")


def test_rotation_without_the_old_key_refuses_and_changes_nothing(app, sibling):
    an_attempt(app)
    before = raw(app, "select webhook_secret from attempt")
    result = (
        sibling(ENCRYPTION_KEY=KEY_B).test_cli_runner().invoke(args=["keys", "rotate-encryption"])
    )
    assert result.exit_code != 0
    assert "ENCRYPTION_KEY_OLD" in result.output
    assert raw(app, "select webhook_secret from attempt") == before


def test_embedded_default_derives_the_key_from_the_secret_key():
    sealer = crypto.Sealer.from_config({"SECRET_KEY": "s3cret"})
    same = crypto.Sealer.from_config({"SECRET_KEY": "s3cret"})
    other = crypto.Sealer.from_config({"SECRET_KEY": "another"})
    sealed = sealer.seal("sdk-session")
    assert same.unseal(sealed) == "sdk-session"
    with pytest.raises(crypto.SealError):
        other.unseal(sealed)


def test_a_passphrase_key_and_a_comma_list_work():
    sealer = crypto.Sealer.from_config({"ENCRYPTION_KEY": "correct horse battery staple"})
    old = sealer.seal("x")
    both = crypto.Sealer.from_config({"ENCRYPTION_KEY": f"{KEY_B}, correct horse battery staple"})
    assert both.unseal(old) == "x"
    assert both.unseal(both.seal("y")) == "y"
