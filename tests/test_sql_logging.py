from __future__ import annotations

import pytest
import sqlalchemy as sa

from lti_proctor.extensions import db


def test_a_failed_statement_never_carries_its_values(app):
    with app.app_context():
        with pytest.raises(sa.exc.StatementError) as caught:
            db.session.execute(
                sa.text("insert into no_such_table (token, code) values (:token, :code)"),
                {"token": "sdk-token-9", "code": "QUIZ-7731"},
            )
        db.session.rollback()
    text = str(caught.value)
    assert "sdk-token-9" not in text and "QUIZ-7731" not in text
    assert "SQL parameters hidden" in text


def test_engine_options_keep_hide_parameters_when_the_operator_sets_others(app_config):
    from lti_proctor import create_app

    app_config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_size": 3, "hide_parameters": False}
    other = create_app(app_config)
    options = other.config["SQLALCHEMY_ENGINE_OPTIONS"]
    assert options["hide_parameters"] is True and options["pool_size"] == 3
    store = other.extensions["lti_proctor_store"]
    if hasattr(store, "dispose"):
        store.dispose()
    with other.app_context():
        db.engine.dispose()
