"""The lti-proctor console script: the command group around create_app(), and `demo`.

Above create_app(): the group builds the app its admin commands (cli.py) run in, and `demo`
builds three apps of its own (demo.py), so neither is registered by create_app() itself.
`python -m lti_proctor` runs the same script.
"""

from __future__ import annotations

import importlib.metadata

import click
from flask import Flask
from flask.cli import FlaskGroup

from lti_proctor import create_app
from lti_proctor.config import ConfigError
from lti_proctor.db_cli import db_group
from lti_proctor.demo import DemoError, PortTakenError, demo_banner, start_demo
from lti_proctor.proctoring.errors import ProfileError

CLI_HELP = """lti-proctor: TrustExam proctoring for Moodle, Canvas and any LTI 1.3 platform.

Settings come from instance/config.py and LTI_PROCTOR_* environment variables (README.md).
"""


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="127.0.0.1 or localhost.")
@click.option(
    "--port-base",
    type=click.IntRange(0, 65533),
    help="The tool's port (default 5000; free ports when those are taken); the sandbox LMS "
    "takes the next, the sandbox proctoring the one after.",
)
@click.option(
    "--family", type=click.Choice(["moodle", "canvas"]), default="moodle", show_default=True
)
def demo_command(host: str, port_base: int | None, family: str) -> None:
    """Run the tool with a sandbox LMS and a sandbox proctoring service on loopback."""
    try:
        try:
            demo = start_demo(
                host=host, port_base=5000 if port_base is None else port_base, family=family
            )
        except PortTakenError as exc:
            if port_base is not None:  # the ports were asked for: say so rather than move
                raise
            click.secho(f"{exc}. Using free ports instead.", fg="yellow")
            demo = start_demo(host=host, port_base=0, family=family)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    with demo:
        click.echo(demo_banner(demo))
        demo.wait()
    click.secho("Demo stopped.", fg="green")


def _create_app() -> Flask:
    try:
        return create_app()
    except (ConfigError, ProfileError) as exc:  # a broken file, a database behind: one line
        raise click.ClickException(f"cannot start: {exc}") from exc


def build_cli() -> click.Group:
    """The lti-proctor command group: our commands and --version, none of Flask's options."""
    cli = FlaskGroup(
        create_app=_create_app,
        add_default_commands=False,
        add_version_option=False,
        load_dotenv=False,
        help=CLI_HELP,
    )
    # FlaskGroup always adds --app, --debug and --env-file: the app is fixed here, so drop them.
    cli.params = [p for p in cli.params if p.name not in ("app", "debug", "env_file")]
    cli.add_command(demo_command)
    cli.add_command(db_group)  # runs without the app: it must work where the app refuses to start
    version = importlib.metadata.version("lti-proctor")
    return click.version_option(version, prog_name="lti-proctor", message="%(prog)s %(version)s")(
        cli
    )


def main() -> None:
    """Entry point of the lti-proctor console script."""
    build_cli().main(prog_name="lti-proctor")


if __name__ == "__main__":
    main()
