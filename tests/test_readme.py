"""The README's reason-code table lists exactly the codes of the Reason enum."""

from __future__ import annotations

import re
from pathlib import Path

from lti_proctor.reasons import Reason

README = Path(__file__).resolve().parents[1] / "README.md"


def documented_codes() -> set[str]:
    """Every backticked code in the first column of the "Reason codes" table."""
    section = README.read_text().split("## Reason codes", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {code for row in rows for code in re.findall(r"`([^`]+)`", row.split(" | ")[0])}


def test_readme_reason_table_matches_the_enum() -> None:
    documented = documented_codes()
    codes = {reason.value for reason in Reason}
    assert codes - documented == set(), "codes missing from README's table"
    assert documented - codes == set(), "README names codes that do not exist"
