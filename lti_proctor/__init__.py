"""lti-proctor: create_app() assembles the tool; nothing else lives here."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the tool's Flask app from defaults, instance config, environment and overrides."""
    from lti_proctor import config, store
    from lti_proctor.extensions import db
    from lti_proctor.schema import create_schema, import_models
    from lti_proctor.web import register_blueprints

    instance_path = (overrides or {}).get("INSTANCE_PATH") or os.environ.get(
        "LTI_PROCTOR_INSTANCE_PATH"
    )
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    config.load_config(app, overrides)
    from lti_proctor.sandbox.policy import check_sandbox_policy

    check_sandbox_policy(app.config)
    import_models()
    db.init_app(app)
    if app.config["AUTO_SETUP"]:
        create_schema(app)
    store.init_app(app)
    _setup_hooks(app)
    register_blueprints(app)
    from lti_proctor.cli import register_cli

    register_cli(app)
    return app


def _setup_hooks(app: Flask) -> None:
    """Run each package's init_app hook, when the package has one yet."""
    import importlib

    for name in (
        "lti_proctor.lti.keys",
        "lti_proctor.proctoring.profiles",
        "lti_proctor.jobs.worker",
    ):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        hook = getattr(module, "init_app", None)
        if hook is not None:
            hook(app)
