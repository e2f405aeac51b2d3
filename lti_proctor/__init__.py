"""lti-proctor: create_app() assembles the tool; nothing else lives here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the tool's Flask app from defaults, instance config, environment and overrides."""
    from lti_proctor import config, crypto, housekeeping, logs, schema, store
    from lti_proctor.cli import register_cli
    from lti_proctor.extensions import db
    from lti_proctor.jobs import worker
    from lti_proctor.lti import keys
    from lti_proctor.proctoring import profiles
    from lti_proctor.production import check_production
    from lti_proctor.results.registry import HANDLERS
    from lti_proctor.sandbox.policy import check_sandbox_policy
    from lti_proctor.web.blueprints import register_blueprints

    app = config.new_app(overrides)
    check_sandbox_policy(app.config)
    check_production(app.config)
    logs.init_app(app)
    schema.import_models()
    crypto.init_app(app)  # before anything reads or writes a sealed column
    db.init_app(app)
    schema.init_app(app)  # upgrades (AUTO_MIGRATE) or refuses a database that is behind
    store.init_app(app)
    keys.init_app(app)  # the first tool key pair, on first start
    profiles.init_app(app)  # a broken profile file stops start-up here
    worker.init_app(app, HANDLERS)  # the job handlers; the embedded worker, when configured
    housekeeping.init_app(app)  # what every outbox worker runs now and then
    register_blueprints(app)
    register_cli(app)
    return app
