"""Plain values the test modules share (URLs of the machine's test services, the tool's origin).

Fixtures live in conftest.py files; test modules import values from here, never from a conftest.
"""

from __future__ import annotations

import os

PG_URL = os.environ.get("LTI_PROCTOR_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LTI_PROCTOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TOOL_URL = "https://tool.example.com"
