"""Operator endpoints: /healthz (the process answers), /readyz (its dependencies answer) and
/metrics (Prometheus). None of them touches a session or shows a secret.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app
from flask.typing import ResponseReturnValue

import lti_proctor.metrics as metrics
from lti_proctor.health import check_readiness
from lti_proctor.jobs.outbox import find_outbox_gauges

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Liveness: the process answers; checks nothing else."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Readiness: the database and Redis answer and the schema is current."""
    readiness = check_readiness(current_app)
    status = "ready" if readiness.ready else "not ready"
    return {"status": status, "checks": readiness.checks}, 200 if readiness.ready else 503


@bp.get("/metrics")
def prometheus_metrics() -> ResponseReturnValue:
    """The Prometheus exposition: request series of every worker plus the outbox gauges."""
    try:
        gauges = find_outbox_gauges()
    except Exception:  # the database is down: still expose the process's own series
        log.warning("metrics: the outbox could not be read", exc_info=True)
        gauges = []
    body = metrics.render(gauges)
    return current_app.response_class(body, mimetype=None, content_type=metrics.CONTENT_TYPE)
