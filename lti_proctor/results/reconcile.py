"""The `attempts.reconcile` job: settle or flag stalled attempts, then schedule the next run.

`reconcile_job` runs under KIND (results/registry.py); `lti-proctor worker` queues the first run,
and each run queues the next. `run_reconcile` is shared with `lti-proctor attempts reconcile`.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, current_app

from lti_proctor.attempts.reconcile import ReconcileResult, reconcile_attempts
from lti_proctor.extensions import db
from lti_proctor.jobs.outbox import enqueue
from lti_proctor.proctoring import client as proctoring_client
from lti_proctor.proctoring.profiles import get_profiles
from lti_proctor.timeutil import utcnow

log = logging.getLogger(__name__)

KIND = "attempts.reconcile"
DEFAULT_INTERVAL_S = 900


def run_reconcile(app: Flask) -> list[ReconcileResult]:
    """Reconcile every stalled attempt with the app's client and profiles; commits as it goes."""
    profiles = get_profiles(app)
    return reconcile_attempts(
        client=proctoring_client.get_client(app),
        profiles=profiles,
        default_profile=profiles[str(app.config.get("PROCTOR_DEFAULT_PROFILE") or "standard")],
        now=utcnow(),
        commit=db.session.commit,
    )


def reconcile_job(payload: dict[str, Any]) -> None:
    """Run reconcile, log what it did, and queue the next run (ATTEMPTS_RECONCILE_INTERVAL_S)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    for result in run_reconcile(app):
        log.info("reconcile attempt %s: %s (%s)", result.attempt_id, result.action, result.detail)
    schedule_reconcile(app)


def schedule_reconcile(app: Flask) -> None:
    """Queue the next reconcile run (once: a waiting run is not queued twice)."""
    interval = float(app.config.get("ATTEMPTS_RECONCILE_INTERVAL_S") or DEFAULT_INTERVAL_S)
    enqueue(KIND, {}, dedupe_key=KIND, run_at=utcnow() + timedelta(seconds=interval))
