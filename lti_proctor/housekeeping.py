"""Housekeeping the outbox workers run now and then: expired shared-store rows purged, succeeded
jobs pruned after OUTBOX_KEEP_SUCCEEDED_DAYS. Each step is idempotent, so any number of workers
may run it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app

from lti_proctor.extensions import db
from lti_proctor.jobs.outbox import prune_succeeded_jobs
from lti_proctor.jobs.worker import HOUSEKEEPING_KEY
from lti_proctor.store import DatabaseStore

log = logging.getLogger(__name__)
DAY_S = 86_400.0


@dataclass(frozen=True)
class HousekeepingResult:
    """What one round removed."""

    store_rows_purged: int
    jobs_pruned: int


def run_housekeeping() -> HousekeepingResult:
    """Purge expired store rows (database store only; Redis expires keys itself), prune old jobs."""
    store = current_app.extensions.get("lti_proctor_store")
    purged = store.purge_expired() if isinstance(store, DatabaseStore) else 0
    keep_days = float(current_app.config["OUTBOX_KEEP_SUCCEEDED_DAYS"])
    pruned = prune_succeeded_jobs(older_than_s=keep_days * DAY_S)
    db.session.commit()
    if purged or pruned:
        log.info(
            "housekeeping: %s expired store rows, %s old succeeded jobs removed", purged, pruned
        )
    return HousekeepingResult(purged, pruned)


def init_app(app: Flask) -> None:
    """Let this app's outbox workers run the housekeeping."""
    app.extensions[HOUSEKEEPING_KEY] = run_housekeeping
