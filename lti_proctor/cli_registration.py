"""Registration commands of the `platform` group: invites and deployments managed by hand.

`platform invite`, `platform invites`, `platform add-deployment`, `platform remove-deployment`,
and the base-URL warning every command that prints a URL for an LMS shows. Thin wrappers around
lti.invites and lti.platforms.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import with_appcontext

from lti_proctor.extensions import db
from lti_proctor.lti import invites
from lti_proctor.lti.platforms import (
    PlatformError,
    add_deployment,
    get_platform,
    remove_deployment,
)
from lti_proctor.lti.registrations import Platform
from lti_proctor.lti.tool_config import ToolIdentity

DEFAULT_BASE_URL = "http://127.0.0.1:5000"


def base_url_warnings(base_url: str) -> list[str]:
    """Why an LMS could not use URLs under base_url (empty when it looks public and https)."""
    found: list[str] = []
    parts = urlsplit(base_url)
    if base_url.rstrip("/") == DEFAULT_BASE_URL or parts.hostname in ("127.0.0.1", "localhost"):
        found.append(
            f"BASE_URL is {base_url}, a loopback address: an LMS on another machine cannot reach "
            "it. Set LTI_PROCTOR_BASE_URL to the tool's public https URL."
        )
    if parts.scheme != "https":
        found.append(
            f"BASE_URL {base_url} is not https: LMSs refuse plain-http tools outside development."
        )
    return found


def warn_about_base_url() -> None:
    """Print base_url_warnings for the current app on stderr, in yellow."""
    for warning in base_url_warnings(current_app.config["BASE_URL"]):
        click.secho(f"Warning: {warning}", fg="yellow", err=True)


def _tool() -> ToolIdentity:
    return ToolIdentity(base_url=current_app.config["BASE_URL"])


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@click.command("invite")
@click.option("--name", help="A label for the platform this invite is for.")
@click.option(
    "--expires", default=None, help="How long the invite stays usable: 30m, 12h, 7d (default), 2w."
)
@click.option(
    "--learn-deployments/--no-learn-deployments",
    default=True,
    show_default=True,
    help="Let the registered platform add new deployment ids of its own at their first launch.",
)
@click.option(
    "--revoke", "revoke", metavar="TOKEN", help="Revoke an open invite (token, URL or id)."
)
@with_appcontext
def invite_command(
    name: str | None, expires: str | None, learn_deployments: bool, revoke: str | None
) -> None:
    """Create a single-use registration invite; the last line is the URL to paste in the LMS."""
    now = datetime.now(UTC)
    if revoke is not None:
        if name or expires:
            raise click.ClickException("--revoke takes no --name or --expires")
        try:
            revoked = invites.revoke_invite(revoke, now=now)
        except invites.InviteError as exc:
            db.session.rollback()
            raise click.ClickException(str(exc)) from exc
        db.session.commit()
        click.secho(
            f"Revoked invite {revoked.id}; it can no longer register a platform.", fg="yellow"
        )
        return
    try:
        duration = invites.parse_duration(
            expires or current_app.config["LTI_INVITE_DEFAULT_EXPIRY"]
        )
        created = invites.create_invite(
            now=now, expires_in=duration, name=name, learn_deployments=learn_deployments
        )
    except invites.InviteError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    invite = created.invite
    warn_about_base_url()
    click.echo(
        f"Invite {invite.id}{f' ({invite.name})' if invite.name else ''}: single use, "
        f"expires {_when(invite.expires_at)}; new deployments "
        f"{'learned at first launch' if learn_deployments else 'added by hand only'}."
    )
    click.echo("Paste this URL into the LMS (Moodle: Manage tools > Tool URL; Canvas: Developer")
    click.echo("Keys > + Developer Key > LTI Registration). It is shown only now:")
    click.secho(f"{_tool().register_url}?invite={created.token}", fg="green")


@click.command("invites")
@with_appcontext
def invites_command() -> None:
    """List the open registration invites (their tokens are not stored, so not shown)."""
    now = datetime.now(UTC)
    open_invites = invites.find_open_invites(now=now)
    for invite in open_invites:
        learn = "learn deployments" if invite.learn_deployments else "deployments by hand"
        click.echo(
            f"{invite.id}  {invite.name or '-'}  created {_when(invite.created_at)}  "
            f"expires {_when(invite.expires_at)}  {learn}"
        )
    click.secho(
        f"{len(open_invites)} open invite(s). Revoke one with "
        "`lti-proctor platform invite --revoke ID`.",
        fg="green",
    )


def _platform(platform_id: int) -> Platform:
    platform = get_platform(platform_id)
    if platform is None:
        raise click.ClickException(f"no platform registered with id {platform_id}")
    return platform


@click.command("add-deployment")
@click.argument("platform_id", type=int)
@click.argument("deployment_id")
@with_appcontext
def add_deployment_command(platform_id: int, deployment_id: str) -> None:
    """Register a deployment id for a platform (see `platform list` for ids)."""
    platform = _platform(platform_id)
    try:
        add_deployment(platform, deployment_id)
    except PlatformError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.secho(
        f"Added deployment {deployment_id!r} to platform {platform.id} ({platform.name}).",
        fg="green",
    )


@click.command("remove-deployment")
@click.argument("platform_id", type=int)
@click.argument("deployment_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def remove_deployment_command(platform_id: int, deployment_id: str, yes: bool) -> None:
    """Remove one deployment id of a platform; launches naming it stop working."""
    platform = _platform(platform_id)
    if not yes:
        click.confirm(
            f"Remove deployment {deployment_id!r} of platform {platform.id} ({platform.name})?",
            abort=True,
        )
    try:
        remove_deployment(platform, deployment_id)
    except PlatformError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.secho(f"Removed deployment {deployment_id!r} of platform {platform.id}.", fg="yellow")


REGISTRATION_COMMANDS = (
    invite_command,
    invites_command,
    add_deployment_command,
    remove_deployment_command,
)
