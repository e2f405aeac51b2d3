"""The lti-proctor admin commands; each is a thin wrapper around an operation.

`lti-proctor` is a Flask command group, so `flask --app lti_proctor ...` works the same.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup


def register_cli(app: Flask) -> None:
    """Attach the command groups to app."""
    app.cli.add_command(serve_command)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve_command(host: str, port: int) -> None:
    """Run the tool's web server."""
    from flask import current_app
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.secho(f"lti-proctor listening on http://{host}:{port}", fg="green")
    run_simple(host, port, app, threaded=True, use_reloader=False)


def _create_app() -> Flask:
    from lti_proctor import create_app

    return create_app()


def main() -> None:
    """Entry point of the lti-proctor console script."""
    cli = FlaskGroup(create_app=_create_app, add_default_commands=False, load_dotenv=False)
    cli.main(prog_name="lti-proctor")
