"""Which handler runs each job kind: the one mapping create_app() hands to the outbox worker.

Add a kind here and in the README's job table; the worker retries a kind it does not know (a
worker of another release may know it), so removing one is safe during a rolling deploy.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from lti_proctor.jobs.worker import Handler
from lti_proctor.results import gradebook, reconcile, reports

HANDLERS: Mapping[str, Handler] = MappingProxyType(
    {
        "ags.publish_status": gradebook.publish_status,
        "report.fetch": reports.fetch_report,
        reconcile.KIND: reconcile.reconcile_job,
    }
)
