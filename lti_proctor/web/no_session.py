"""The tool keeps nothing in Flask's cookie session; this module owns that decision.

LTI state lives in the shared store and in signed tokens (state cookie, start, attempt and link
tokens), so every request would otherwise build a signing serializer to open an empty session
and check it again to save nothing: 4% of a webhook's CPU. NullSession answers instead, and a
write to it raises, so code that starts relying on a cookie session fails loudly in tests.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin


class NoCookieSession(SessionInterface):
    """Never opens or saves a cookie session: every request gets Flask's NullSession."""

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        """The read-only null session (Flask skips saving it)."""
        return self.make_null_session(app)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Nothing to save: the session is always the null one."""


def init_app(app: Flask) -> None:
    """Give app the cookie-less session interface."""
    app.session_interface = NoCookieSession()
