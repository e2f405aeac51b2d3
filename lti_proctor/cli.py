"""The lti-proctor admin commands; each is a thin wrapper around an operation.

create_app() registers them on the app, so `flask --app lti_proctor ...` works the same as the
`lti-proctor` console script (lti_proctor/__main__.py), which also carries `demo`.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from lti_proctor.crypto import SealError, reseal_all
from lti_proctor.exam_settings import reseal_access_codes
from lti_proctor.extensions import db
from lti_proctor.lti import keys as tool_keys
from lti_proctor.lti.platforms import (
    CANVAS_ENVS,
    PRESETS,
    PlatformError,
    PlatformFields,
    add_platform,
    get_platform,
    get_platform_by_client,
    list_platforms,
    remove_platform,
    resolve_preset,
)
from lti_proctor.lti.registrations import Platform


def register_cli(app: Flask) -> None:
    """Attach the command groups to app."""
    from lti_proctor.cli_registration import REGISTRATION_COMMANDS

    for command in REGISTRATION_COMMANDS:
        platform_group.add_command(command)
    app.cli.add_command(serve_command)
    app.cli.add_command(platform_group)
    app.cli.add_command(keys_group)
    app.cli.add_command(worker_command)
    app.cli.add_command(jobs_group)
    from lti_proctor.cli_attempts import attempts_group

    app.cli.add_command(attempts_group)


WORKER_CLASSES = ("gevent", "gthread")
DEFAULT_THREADS = 32  # gthread: 30+ proctoring-service calls in flight per worker


def gunicorn_argv(
    *, host: str, port: int, workers: int, worker_class: str, threads: int
) -> list[str]:
    """The command line that runs the tool under gunicorn with the shipped configuration."""
    argv = [sys.executable, "-m", "gunicorn", "--config", "python:lti_proctor.gunicorn_conf"]
    argv += ["--bind", f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    argv += ["--workers", str(workers), "--worker-class", worker_class]
    if worker_class == "gthread":
        argv += ["--threads", str(threads)]
    return argv


def _default_workers(app: Flask) -> int:
    """One per CPU core; one on SQLite, whose single writer more workers would only queue on."""
    if str(app.config["SQLALCHEMY_DATABASE_URI"]).startswith("sqlite"):
        return 1
    return max(1, os.cpu_count() or 1)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    help="gunicorn worker processes [default: one per CPU core; 1 on SQLite].",
)
@click.option(
    "--worker-class",
    type=click.Choice(WORKER_CLASSES),
    default="gevent",
    show_default=True,
    help="gevent: a greenlet per request; gthread: a thread pool per worker.",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 1000),
    help=f"Threads per worker, with --worker-class gthread [default: {DEFAULT_THREADS}].",
)
@click.option("--dev", is_flag=True, help="werkzeug's reloading development server instead.")
@with_appcontext
def serve_command(
    host: str, port: int, workers: int | None, worker_class: str, threads: int | None, dev: bool
) -> None:
    """Run the tool's web server: gunicorn, or the development server with --dev."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if dev:
        from werkzeug.serving import run_simple

        click.secho(f"lti-proctor (development server) on http://{host}:{port}", fg="yellow")
        run_simple(host, port, app, threaded=True, use_reloader=True)
        return
    if threads is not None and worker_class != "gthread":
        raise click.UsageError("--threads goes with --worker-class gthread")
    argv = gunicorn_argv(
        host=host,
        port=port,
        workers=workers or _default_workers(app),
        worker_class=worker_class,
        threads=threads or DEFAULT_THREADS,
    )
    # Building the app here (AUTO_SETUP) prepared the database once; the workers never do.
    click.secho(f"lti-proctor on http://{host}:{port} ({' '.join(argv[3:])})", fg="green")
    sys.stdout.flush()
    os.execv(sys.executable, argv)


# --- platform: the LMS registrations that may launch the tool ---------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Echo rows as left-aligned columns under headers."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    for row in (headers, *rows):
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _deployment_list(platform: Platform) -> str:
    listed = ", ".join(
        d.deployment_id
        + ("" if d.active else " (inactive)")
        + (" (TAs: instructor view)" if d.allow_teaching_assistants else "")
        + (" (learned at first launch)" if d.learned_at else "")
        for d in platform.deployments
    )
    if platform.learn_deployments:
        listed += (", " if listed else "") + "+ new ones learned at first launch"
    return listed


def _preset_fields(preset: str | None, url: str | None, canvas_env: str | None) -> PlatformFields:
    if preset is None:
        if url or canvas_env:
            raise PlatformError("--url and --canvas-env go with --preset moodle|canvas")
        return PlatformFields()
    if canvas_env and preset != "canvas":
        raise PlatformError("--canvas-env goes with --preset canvas")
    return resolve_preset(preset, url=url, canvas_env=canvas_env or "prod")


def _echo_tool_urls(base_url: str, *, canvas: bool = False) -> None:
    from lti_proctor.cli_registration import warn_about_base_url

    warn_about_base_url()
    if canvas:
        click.echo(
            "Canvas: Developer Keys > + LTI Key > Method 'Enter URL': "
            f"{base_url}/lti/config/canvas.json"
        )
    click.echo("Paste into the LMS's tool configuration:")
    _table(
        ("  setting", "value"),
        [
            ("  Login / OIDC initiation URL", f"{base_url}/lti/login"),
            ("  Redirect URI / launch URL", f"{base_url}/lti/launch"),
            ("  Target link URI / tool URL", f"{base_url}/lti/launch"),
            ("  Public keyset (JWKS) URL", f"{base_url}/.well-known/jwks.json"),
        ],
    )


@click.group("platform", cls=AppGroup)
def platform_group() -> None:
    """Register the LMS platforms (issuer + client_id) and deployments that may launch the tool."""


@platform_group.command("add")
@click.option("--preset", type=click.Choice(PRESETS), help="Fill the endpoints of a known LMS.")
@click.option("--url", help="With --preset: the Moodle wwwroot or the Canvas school URL.")
@click.option("--canvas-env", type=click.Choice(CANVAS_ENVS), help="With --preset canvas.")
@click.option("--issuer")
@click.option("--client-id")
@click.option("--deployment-id", "deployment_ids", multiple=True, help="Repeatable.")
@click.option("--auth-login-url", help="The platform's OIDC authorization endpoint.")
@click.option("--auth-token-url", help="The platform's OAuth2 token endpoint.")
@click.option("--key-set-url", help="The platform's public JWKS URL.")
@click.option("--name", help="A label for admins; defaults to the host name.")
@click.option("--auth-audience", help="The token endpoint's audience, when not its URL.")
@click.option(
    "--allow-teaching-assistants",
    is_flag=True,
    help="Teaching assistants of the added deployments see the instructor view (default: refused).",
)
def platform_add(
    preset: str | None,
    url: str | None,
    canvas_env: str | None,
    deployment_ids: tuple[str, ...],
    allow_teaching_assistants: bool,
    **explicit: str | None,
) -> None:
    """Register a platform, or add deployments to a registered (issuer, client_id).

    Explicit flags override the preset's values. For a registered (issuer, client_id) the
    endpoints may be left out (given ones must match), and each --deployment-id must be new.
    """
    try:
        base = _preset_fields(preset, url, canvas_env)
        given = {k: v for k, v in explicit.items() if v is not None}
        fields = dataclasses.replace(base, **given)
        added = add_platform(
            **dataclasses.asdict(fields),
            deployment_ids=deployment_ids,
            allow_teaching_assistants=allow_teaching_assistants,
        )
    except PlatformError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    platform = added.platform
    click.echo(f"Platform {platform.id}: {platform.issuer}  client_id {platform.client_id}")
    click.echo(f"Deployments: {_deployment_list(platform)}")
    _echo_tool_urls(current_app.config["BASE_URL"], canvas=platform.family == "canvas")
    new_ids = ", ".join(added.deployment_ids)
    if added.created:
        message = f"Registered platform {platform.id} ({platform.name}), deployments {new_ids}."
    else:
        message = f"Added deployments {new_ids} to platform {platform.id} ({platform.name})."
    click.secho(message, fg="green")


@platform_group.command("list")
def platform_list() -> None:
    """Show every registered platform and its deployments."""
    registered = list_platforms()
    rows = [(str(p.id), p.name, p.issuer, p.client_id, _deployment_list(p)) for p in registered]
    if rows:
        _table(("id", "name", "issuer", "client_id", "deployments"), rows)
    click.secho(f"{len(rows)} platform(s) registered.", fg="green" if rows else "yellow")


def _find_for_removal(
    platform_id: int | None, issuer: str | None, client_id: str | None
) -> Platform:
    if platform_id is not None and (issuer or client_id):
        raise click.ClickException("give a platform ID or --issuer with --client-id, not both")
    if platform_id is not None:
        found = get_platform(platform_id)
        what = f"id {platform_id}"
    elif issuer and client_id:
        found = get_platform_by_client(issuer, client_id)
        what = f"issuer {issuer} client_id {client_id}"
    else:
        raise click.ClickException("give a platform ID, or both --issuer and --client-id")
    if found is None:
        raise click.ClickException(f"no platform registered with {what}")
    return found


@platform_group.command("remove")
@click.argument("platform_id", type=int, required=False)
@click.option("--issuer")
@click.option("--client-id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def platform_remove(
    platform_id: int | None, issuer: str | None, client_id: str | None, yes: bool
) -> None:
    """Remove a platform and all its deployments; its launches stop working."""
    platform = _find_for_removal(platform_id, issuer, client_id)
    label = f"platform {platform.id} ({platform.name}, {platform.issuer}, {platform.client_id})"
    click.echo(f"Deployments: {_deployment_list(platform) or '-'}")
    if not yes:
        click.confirm(f"Remove {label} and its deployments?", abort=True)
    remove_platform(platform)
    db.session.commit()
    click.secho(f"Removed {label}.", fg="yellow")


# --- keys: the tool's signing keys ---------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M} UTC"


@click.group("keys", cls=AppGroup)
def keys_group() -> None:
    """Show and rotate the tool's signing keys (published at /.well-known/jwks.json)."""


@keys_group.command("rotate")
@click.option(
    "--grace-days",
    type=click.IntRange(min=0),
    default=None,
    help="How long the previous key stays published [default: LTI_KEY_GRACE_DAYS].",
)
def keys_rotate(grace_days: int | None) -> None:
    """Make a new key current; the previous one stays published for the grace period."""
    grace = current_app.config["LTI_KEY_GRACE_DAYS"] if grace_days is None else grace_days
    previous = tool_keys.get_current_key()
    new_key = tool_keys.rotate_keys(now=datetime.now(UTC), grace_days=int(grace))
    db.session.commit()
    if previous is not None:
        click.echo(f"Key {previous.kid} is retiring: published until {_when(previous.expires_at)}.")
    click.secho(f"New current key {new_key.kid}.", fg="green")


@keys_group.command("show")
def keys_show() -> None:
    """List the tool's keys: kid, status and dates (never private material)."""
    now = datetime.now(UTC)
    stored = tool_keys.find_keys()
    rows = [
        (
            k.kid,
            "expired" if tool_keys.is_expired(k, now) else k.status,
            _when(k.created_at),
            _when(k.expires_at),
        )
        for k in stored
    ]
    if rows:
        _table(("kid", "status", "created", "published until"), rows)
    current = next((k for k in stored if k.status == tool_keys.KeyStatus.CURRENT), None)
    if current is None:
        click.secho("No current key: run `lti-proctor keys rotate`.", fg="yellow")
    else:
        click.secho(f"{len(rows)} key(s); current {current.kid}.", fg="green")


@keys_group.command("prune")
def keys_prune() -> None:
    """Drop retiring keys whose grace period has ended."""
    gone = tool_keys.prune_keys(now=datetime.now(UTC))
    db.session.commit()
    for kid in gone:
        click.echo(f"Dropped {kid}.")
    click.secho(f"Dropped {len(gone)} expired key(s).", fg="green")


@keys_group.command("rotate-encryption")
def keys_rotate_encryption() -> None:
    """Re-seal every sealed column (tool keys, webhook secrets, SDK tokens) under the current
    ENCRYPTION_KEY; set the previous key in ENCRYPTION_KEY_OLD first."""
    try:
        counts = reseal_all()
        counts["access codes"] = reseal_access_codes()  # kept as sealed text, sealed by hand
    except SealError as exc:
        db.session.rollback()
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    for table, count in counts.items():
        click.echo(f"{table}: {count} row(s) re-sealed.")
    click.secho(
        "Every sealed value now opens with the current key; ENCRYPTION_KEY_OLD may go.", fg="green"
    )


# --- worker and jobs: the outbox ----------------------------------------------------------------


@click.command("worker")
@click.option("--once", is_flag=True, help="Run the jobs due now, then exit.")
@click.option("--id", "worker_id", help="Name in locked_by [default: host:pid].")
@click.option(
    "--nice",
    type=click.IntRange(0, 19),
    help="Lower the OS priority by this much, so web workers win the CPU "
    "[default: OUTBOX_WORKER_NICE, 10].",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve this worker's Prometheus metrics (AGS answers, token requests, service calls) "
    "on 127.0.0.1:PORT.",
)
@with_appcontext
def worker_command(
    once: bool, worker_id: str | None, nice: int | None, metrics_port: int | None
) -> None:
    """Run an outbox worker; SIGTERM or Ctrl-C stops it after the current job."""
    from lti_proctor.jobs.worker import Worker, lower_priority, run_until_signalled
    from lti_proctor.results.reconcile import schedule_reconcile

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    schedule_reconcile(app)  # the periodic reconcile keeps itself going from its first run
    db.session.commit()
    increment = int(app.config["OUTBOX_WORKER_NICE"] if nice is None else nice)
    if increment:
        click.echo(f"Worker priority lowered: nice {lower_priority(increment)}.")
    if metrics_port:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    worker = Worker(app, worker_id=worker_id)
    if once:
        ran = worker.drain(max_jobs=10_000)
        click.secho(f"Ran {ran} job(s).", fg="green")
        return
    click.echo(f"Worker {worker.worker_id} polling every {worker.poll_interval_s:g}s.")
    run_until_signalled(worker)
    click.secho(f"Worker {worker.worker_id} stopped.", fg="green")


def _excerpt(text: str | None, width: int = 60) -> str:
    one_line = " ".join((text or "").split())
    return one_line if len(one_line) <= width else one_line[: width - 1] + "…"


@click.group("jobs", cls=AppGroup)
def jobs_group() -> None:
    """Inspect the outbox and put dead jobs back in the queue."""


@jobs_group.command("list")
@click.option("--dead", is_flag=True, help="Only dead jobs (status failed).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
def jobs_list(dead: bool, limit: int) -> None:
    """Show the most recent jobs, newest first."""
    from lti_proctor.jobs.models import JobStatus
    from lti_proctor.jobs.outbox import count_jobs_by_status, find_jobs

    jobs = find_jobs(status=JobStatus.FAILED if dead else None, limit=limit)
    rows = [
        (
            str(j.id),
            j.kind,
            j.status,
            str(j.attempts),
            _when(j.scheduled_at),
            _excerpt(j.last_error, width=240 if dead else 60),  # dead: the reason matters
        )
        for j in jobs
    ]
    if rows:
        _table(("id", "kind", "status", "attempts", "scheduled_at", "last_error"), rows)
    counts = count_jobs_by_status()
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no jobs"
    dead_count = counts.get(JobStatus.FAILED.value, 0)
    click.secho(f"Outbox: {summary}.", fg="red" if dead_count else "green")


@jobs_group.command("retry")
@click.argument("job_id", type=int, required=False)
@click.option("--all-dead", is_flag=True, help="Every dead job.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def jobs_retry(job_id: int | None, all_dead: bool, yes: bool) -> None:
    """Put a dead job (or, with --all-dead, every one) back in the queue, due now."""
    from lti_proctor.jobs.models import JobStatus, OutboxJob
    from lti_proctor.jobs.outbox import count_jobs_by_status, revive_dead_jobs, revive_job

    if (job_id is None) == (not all_dead):
        raise click.ClickException("give a job ID or --all-dead, not both")
    if all_dead:
        dead = count_jobs_by_status().get(JobStatus.FAILED.value, 0)
        if not dead:
            click.secho("No dead jobs.", fg="green")
            return
        if not yes:
            click.confirm(f"Put {dead} dead job(s) back in the queue?", abort=True)
        revived = revive_dead_jobs()
        db.session.commit()
        click.secho(f"Queued {revived} dead job(s) again.", fg="green")
        return
    job = db.session.get(OutboxJob, job_id)
    if job is None:
        raise click.ClickException(f"no job {job_id}")
    try:
        revive_job(job)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.secho(f"Queued job {job.id} ({job.kind}) again.", fg="green")
