"""lti-proctor: create_app() assembles the tool; nothing else lives here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the tool's Flask app from defaults, instance config, environment and overrides."""
    from lti_proctor import config, housekeeping, logs, store
    from lti_proctor.cli import register_cli
    from lti_proctor.extensions import db
    from lti_proctor.jobs import worker
    from lti_proctor.lti import keys
    from lti_proctor.proctoring import profiles
    from lti_proctor.sandbox.policy import check_sandbox_policy
    from lti_proctor.schema import create_schema, import_models
    from lti_proctor.web import register_blueprints

    instance_path = (overrides or {}).get("INSTANCE_PATH") or os.environ.get(
        "LTI_PROCTOR_INSTANCE_PATH"
    )
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    config.load_config(app, overrides)
    check_sandbox_policy(app.config)
    logs.init_app(app)
    import_models()
    db.init_app(app)
    if app.config["AUTO_SETUP"]:
        create_schema(app)
    store.init_app(app)
    keys.init_app(app)  # the first tool key pair, on first start
    profiles.init_app(app)  # a broken profile file stops start-up here
    worker.init_app(app)  # the embedded outbox worker, when configured
    housekeeping.init_app(app)  # what every outbox worker runs now and then
    register_blueprints(app)
    register_cli(app)
    return app
