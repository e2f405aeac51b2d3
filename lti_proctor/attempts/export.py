"""The instructor's CSV export of an exam's attempts, safe to open in a spreadsheet.

Plain values in (AttemptOverview rows), text out; no Flask. Any cell that a spreadsheet would read
as a formula (it starts with =, +, -, @, a tab or a carriage return) is prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from lti_proctor.attempts.queries import AttemptOverview

COLUMNS = (
    "student",
    "email",
    "attempt",
    "state",
    "started_at",
    "finished_at",
    "risk_score",
    "risk_source",
    "risk_level",
    "violations",
    "needs_review",
    "report_url",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """The cell text, with a leading quote when a spreadsheet would run it as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _time(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _flag(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def _number(value: float | None) -> str:
    return "" if value is None else f"{round(value, 2):g}"


def attempt_row(row: AttemptOverview) -> list[str]:
    """One attempt as CSV cells, in COLUMNS order."""
    cells: list[object] = [
        row.student_name,
        row.student_email,
        row.number,
        row.state,
        _time(row.started_at),
        _time(row.finished_at),
        _number(row.risk_score),
        row.risk_source,
        row.risk_level,
        row.violation_count,
        _flag(row.needs_review),
        row.report_url,
    ]
    return [safe_cell(cell) for cell in cells]


def attempts_csv(rows: Iterable[AttemptOverview]) -> str:
    """The CSV document (header + one line per attempt, CRLF line ends as RFC 4180 says)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    writer.writerows(attempt_row(row) for row in rows)
    return buffer.getvalue()


def export_filename(exam_name: str, *, now: datetime) -> str:
    """An ASCII file name for the export: proctoring-<exam>-<date>.csv."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", exam_name).strip("-").lower()[:60] or "exam"
    return f"proctoring-{slug}-{now.astimezone(UTC):%Y-%m-%d}.csv"
