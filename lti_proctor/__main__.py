"""The lti-proctor console script: the command group around create_app(), and `demo`.

Above create_app(): the group builds the app its admin commands (cli.py) run in, and `demo`
builds three apps of its own (demo.py), so neither is registered by create_app() itself.
`python -m lti_proctor` runs the same script.
"""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from lti_proctor import create_app
from lti_proctor.config import ConfigError
from lti_proctor.demo import DemoError, demo_banner, start_demo
from lti_proctor.proctoring.errors import ProfileError


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="127.0.0.1 or localhost.")
@click.option(
    "--port-base",
    default=5000,
    show_default=True,
    type=click.IntRange(0, 65533),
    help="The tool's port; the sandbox LMS takes the next, the sandbox proctoring the one after.",
)
@click.option(
    "--family", type=click.Choice(["moodle", "canvas"]), default="moodle", show_default=True
)
def demo_command(host: str, port_base: int, family: str) -> None:
    """Run the tool with a sandbox LMS and a sandbox proctoring service on loopback."""
    try:
        demo = start_demo(host=host, port_base=port_base, family=family)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    with demo:
        click.echo(demo_banner(demo))
        demo.wait()
    click.secho("Demo stopped.", fg="green")


def _create_app() -> Flask:
    try:
        return create_app()
    except (ConfigError, ProfileError) as exc:  # a broken file: one line naming it, no traceback
        raise click.ClickException(f"cannot start: {exc}") from exc


def main() -> None:
    """Entry point of the lti-proctor console script."""
    cli = FlaskGroup(create_app=_create_app, add_default_commands=False, load_dotenv=False)
    cli.add_command(demo_command)
    cli.main(prog_name="lti-proctor")


if __name__ == "__main__":
    main()
