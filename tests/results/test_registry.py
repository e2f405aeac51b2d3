from __future__ import annotations

import re
from pathlib import Path

from flask import Flask

from lti_proctor.jobs.worker import job_handlers
from lti_proctor.results import gradebook, reports
from lti_proctor.results.registry import HANDLERS

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_job_kinds() -> set[str]:
    """The kinds in the README's job table (its rows start with a backticked kind)."""
    section = README.read_text(encoding="utf-8").split("## Background jobs", 1)[1]
    section = section.split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", section, flags=re.M))


def test_every_job_kind_in_the_readme_has_a_handler_and_no_other() -> None:
    assert readme_job_kinds() == set(HANDLERS)


def test_each_kind_runs_its_results_handler() -> None:
    assert HANDLERS["ags.publish_status"] is gradebook.publish_status
    assert HANDLERS["report.fetch"] is reports.fetch_report
    assert reports.KIND == "report.fetch"  # the kind the report poll re-enqueues itself under


def test_create_app_gives_its_workers_the_registered_handlers(app: Flask) -> None:
    assert job_handlers(app) == dict(HANDLERS)
