"""The `lti-proctor attempts` commands: a thin wrapper around attempts/reconcile.py."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup

from lti_proctor.proctoring.errors import ProviderRejectedError


@click.group("attempts", cls=AppGroup)
def attempts_group() -> None:
    """Proctored attempts."""


@attempts_group.command("reconcile")
def reconcile_command() -> None:
    """Settle attempts stuck longer than their profile allows; flag the rest for a person."""
    from lti_proctor.results.reconcile import run_reconcile

    try:
        results = run_reconcile(current_app._get_current_object())  # type: ignore[attr-defined]
    except ProviderRejectedError as exc:
        raise click.ClickException(str(exc)) from None
    for r in results:
        click.echo(f"{r.attempt_id}  {r.state_before} -> {r.state_after}  {r.action}: {r.detail}")
    flagged = sum(1 for r in results if r.action == "flagged")
    settled = len(results) - flagged
    colour = "yellow" if flagged else "green"
    click.secho(f"{settled} attempt(s) settled, {flagged} flagged for a person", fg=colour)
