from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from lti_proctor.attempts.export import COLUMNS, attempts_csv, export_filename, safe_cell
from lti_proctor.attempts.queries import AttemptOverview

ROW = AttemptOverview(
    id="a1",
    number=2,
    state="reported",
    student_name='Ana, "the" Student',
    student_email=None,
    started_at=datetime(2026, 3, 2, 8, 0, 14, tzinfo=UTC),
    finished_at=None,
    report_url="https://app.proctor.example.test/r/1",
    risk_score=33.333,
    risk_source="credibility",
    violation_count=0,
    needs_review=False,
)


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=1+2", "'=1+2"),
        ("+31 20 123", "'+31 20 123"),
        ("-1", "'-1"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("Ana = Bob", "Ana = Bob"),
        (None, ""),
        (7, "7"),
    ],
)
def test_safe_cell_quotes_what_a_spreadsheet_would_run(value, cell):
    assert safe_cell(value) == cell


def test_csv_has_the_header_and_quotes_commas_and_quotes():
    rows = list(csv.reader(io.StringIO(attempts_csv([ROW]))))
    assert rows[0] == list(COLUMNS)
    assert dict(zip(COLUMNS, rows[1], strict=True)) == {
        "student": 'Ana, "the" Student',
        "email": "",
        "attempt": "2",
        "state": "reported",
        "started_at": "2026-03-02T08:00:14Z",
        "finished_at": "",
        "risk_score": "33.33",
        "risk_source": "credibility",
        "risk_level": "",
        "violations": "0",
        "needs_review": "no",
        "report_url": "https://app.proctor.example.test/r/1",
    }


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("Final exam (proctored)", "proctoring-final-exam-proctored-2026-03-02.csv"),
        ("Экзамен", "proctoring-exam-2026-03-02.csv"),
        ('a"; b', "proctoring-a-b-2026-03-02.csv"),
    ],
)
def test_export_filename_is_plain_ascii(name, file):
    assert export_filename(name, now=datetime(2026, 3, 2, 23, 0, tzinfo=UTC)) == file
