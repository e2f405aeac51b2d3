"""The sandbox LMS's quiz: a two-question page (/quiz/1) that the tool's exam wrapper shows framed
as the exam content, with a submit button. Framable by the LMS itself and the tool's origin only.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, render_template, request
from flask.typing import ResponseReturnValue

from lti_proctor.sandbox.lms_platform import get_sandbox_lms

QUIZ_BP = "sandbox_lms_quiz"


@dataclass(frozen=True)
class Question:
    """One multiple-choice question and its right answer."""

    name: str
    text: str
    choices: tuple[str, ...]
    answer: str


QUIZZES: dict[int, tuple[str, tuple[Question, ...]]] = {
    1: (
        "Final exam",
        (
            Question(
                "q1",
                "What does LTI stand for?",
                (
                    "Learning Tools Interoperability",
                    "Linked Teaching Interface",
                    "Learner Tracking Integration",
                ),
                "Learning Tools Interoperability",
            ),
            Question(
                "q2",
                "Which message starts an LTI 1.3 launch?",
                (
                    "OIDC login initiation",
                    "A SAML assertion",
                    "An OAuth 1.0a signature",
                ),
                "OIDC login initiation",
            ),
        ),
    )
}


def quiz_url(base_url: str, quiz_id: int = 1) -> str:
    """The absolute URL of a quiz on the sandbox LMS at base_url."""
    return f"{base_url.rstrip('/')}/quiz/{quiz_id}"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _framable(page: str, status: int = 200) -> Response:
    """The page, allowed into frames of the LMS and of the tool (the exam wrapper) only."""
    tool = _origin(get_sandbox_lms().tool_login_url)
    resp = Response(page, status=status, content_type="text/html; charset=utf-8")
    resp.headers["Content-Security-Policy"] = f"frame-ancestors 'self' {tool}"
    return resp


def quiz(quiz_id: int) -> ResponseReturnValue:
    """GET shows the questions; POST grades the submitted answers."""
    if quiz_id not in QUIZZES:
        return _framable(render_template("sandbox_lms/error.html", error="not_found"), 404)
    title, questions = QUIZZES[quiz_id]
    if request.method == "GET":
        page = render_template("sandbox_lms/quiz.html", title=title, questions=questions)
        return _framable(page)
    right = sum(request.form.get(q.name) == q.answer for q in questions)
    page = render_template(
        "sandbox_lms/quiz.html", title=title, questions=questions, right=right, submitted=True
    )
    return _framable(page)


def register_quiz(app: Flask) -> None:
    """Add /quiz/<id> to a sandbox LMS app."""
    bp = Blueprint(QUIZ_BP, __name__)
    bp.add_url_rule("/quiz/<int:quiz_id>", "quiz", quiz, methods=["GET", "POST"])
    app.register_blueprint(bp)
