"""`lti-proctor demo`: the tool, a sandbox LMS and the sandbox proctoring service on loopback,
registered with each other, with a seeded course and a proctored exam link.

start_demo() binds the three ports (refusing taken ones with one line), builds the apps, registers
the sandbox LMS in the tool's registry (idempotent across restarts) and serves each app from its
own werkzeug thread; it returns a RunningDemo whose stop() ends it all, so tests drive exactly
what the command runs. Development only: the sandbox policy refuses it in PRODUCTION.
"""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from lti_proctor.config import ConfigError
from lti_proctor.sandbox.policy import SANDBOX_KEY_PREFIX

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")
FAMILIES = ("moodle", "canvas")
ROLES = ("tool", "sandbox LMS", "sandbox proctoring service")
EXAM_LINK = "final"
ACCESS_CODE = "PROC-2468"
PROFILE = "standard"
REPORT_DELAY_S = 0.0  # the report is ready at once: the tool fetches it right after the finish
_ENDPOINTS = ("auth_login_url", "auth_token_url", "key_set_url", "auth_audience")
_PLATFORM_FIELDS = ("issuer", "client_id", "name", "family", *_ENDPOINTS)


class DemoError(Exception):
    """The demo cannot start; the message is one line saying why and what to do."""


class PortTakenError(DemoError):
    """One of the demo's ports is already in use."""


@dataclass(frozen=True)
class DemoUrls:
    """Where the three demo servers answer."""

    tool: str
    lms: str
    proctoring: str


class _Slot:
    """A WSGI app whose target is set once the server's port (hence the app's URL) is known."""

    def __init__(self) -> None:
        self.app: Flask | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting"]
        return self.app(environ, start_response)


@dataclass
class RunningDemo:
    """The running demo: its URLs, apps and servers. Use stop() (or a with block) to end it."""

    urls: DemoUrls
    family: str
    tool_app: Flask
    lms_app: Flask
    proctoring_app: Flask
    registration: str
    servers: list[BaseWSGIServer] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self) -> None:
        """Stop the worker thread and the three servers; safe to call twice."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        from lti_proctor.jobs.worker import stop_embedded_worker

        stop_embedded_worker(self.tool_app, timeout_s=5)
        _close(self.servers, self.threads)
        from lti_proctor.extensions import db

        with self.tool_app.app_context():
            db.engine.dispose()

    def wait(self) -> None:
        """Block until Ctrl-C (or stop() from another thread)."""
        try:
            while not self._stopped.wait(0.5):
                pass
        except KeyboardInterrupt:
            return

    def __enter__(self) -> RunningDemo:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _close(servers: list[BaseWSGIServer], threads: list[threading.Thread]) -> None:
    """Shut down each server (its serve_forever thread, if it runs) and release its port."""
    for index, server in enumerate(servers):
        thread = threads[index] if index < len(threads) else None
        if thread is not None and thread.is_alive():
            server.shutdown()
            thread.join(timeout=5)
        server.server_close()


def _listen(host: str, port: int, role: str) -> socket.socket:
    """A listening socket on host:port; a taken port is a DemoError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise PortTakenError(
            f"port {port} on {host} (for the {role}) is already in use ({exc.strerror}): stop "
            "what runs there or choose other ports with --port-base"
        ) from exc
    return sock


def bind_servers(host: str, port_base: int) -> tuple[list[BaseWSGIServer], list[_Slot]]:
    """Three threaded servers on port_base, +1, +2 (port_base 0: free ports), apps not yet set."""
    if host not in LOOPBACK_HOSTS:
        choices = " or ".join(LOOPBACK_HOSTS)
        raise DemoError(f"the demo runs on loopback only: use --host {choices}, not {host!r}")
    servers: list[BaseWSGIServer] = []
    slots: list[_Slot] = []
    try:
        for offset, role in enumerate(ROLES):
            sock = _listen(host, port_base + offset if port_base else 0, role)
            slot = _Slot()
            try:
                servers.append(make_server(host, 0, slot, threaded=True, fd=sock.fileno()))
            finally:
                sock.close()  # the server holds its own duplicate of the socket
            slots.append(slot)
    except BaseException:
        _close(servers, [])
        raise
    return servers, slots


def tool_config(urls: DemoUrls, api_key: str) -> dict[str, Any]:
    """The tool's settings for the demo: sandbox proctoring, embedded worker, embedded SQLite."""
    return {
        "BASE_URL": urls.tool,
        "DEV_INSECURE_COOKIES": True,
        "TRUSTEXAM_API_BASE": f"{urls.proctoring}/api",
        "TRUSTEXAM_REPORT_BASE": f"{urls.proctoring}/report-api/v1",
        "TRUSTEXAM_SDK_URL": f"{urls.proctoring}/extension/app.js",
        "TRUSTEXAM_API_KEY": api_key,
        "TRUSTEXAM_REPORT_API_KEY": api_key,
        "TRUSTEXAM_AUTH_MODE": "header",
        "SANDBOX_PROCTORING": True,
        "OUTBOX_EMBEDDED_WORKER": True,
        # The embedded defaults, whatever else is configured: the demo never writes its sandbox
        # registrations into a real database or store.
        "DATABASE_URL": None,
        "SQLALCHEMY_DATABASE_URI": None,
        "REDIS_URL": None,
        "AUTO_SETUP": True,
        "AUTO_MIGRATE": True,  # the embedded SQLite file upgrades itself on start
    }


def exam_custom(lms_url: str) -> dict[str, str]:
    """The demo exam's settings as legacy custom parameters (kept in the tool by _register)."""
    from lti_proctor.sandbox.lms_quiz import quiz_url

    return {
        "exam_url": quiz_url(lms_url),
        "access_code": ACCESS_CODE,
        "proctoring_profile": PROFILE,
    }


def seed_demo_exam(described: Mapping[str, str | None], context_id: str, lms_url: str) -> str:
    """Keep the demo exam's settings in the tool, as deep linking would; returns its reference.

    The seeded link then carries only `custom: {"exam": ref}`: the access code never rides in
    the student's launch. Flushes, never commits.
    """
    from lti_proctor.exam_settings import Owner, SettingsInput, create_settings
    from lti_proctor.lti.platforms import get_platform_by_client

    platform = get_platform_by_client(str(described["issuer"]), str(described["client_id"]))
    assert platform is not None  # registered just before
    custom = exam_custom(lms_url)
    values = SettingsInput(
        title="Final exam",
        exam_url=custom["exam_url"],
        access_code=ACCESS_CODE,
        profile=PROFILE,
        max_attempts=1,
        opens_at=None,
        closes_at=None,
        review_threshold=None,
    )
    owner = Owner(platform.id, str(described["deployment_id"]), context_id)
    return create_settings(owner, values, created_by=None).ref


def register_sandbox_platform(described: Mapping[str, str | None]) -> str:
    """Register the sandbox LMS (SandboxLms.describe()) in the tool; say what changed.

    Idempotent: a registration with the same endpoints is kept; a sandbox one with other
    endpoints (other ports) is replaced. Never touches a registration not named "Sandbox ...".
    Flushes, never commits.
    """
    from lti_proctor.lti.platforms import (
        PlatformError,
        add_platform,
        get_platform_by_client,
        remove_platform,
    )

    fields = {name: described.get(name) for name in _PLATFORM_FIELDS}
    deployment = str(described["deployment_id"])
    try:
        existing = get_platform_by_client(str(fields["issuer"]), str(fields["client_id"]))
        outcome = "registered"
        if existing is not None and any(
            getattr(existing, name) != fields[name] for name in _ENDPOINTS
        ):
            if not existing.name.startswith("Sandbox "):
                raise DemoError(
                    f"issuer {existing.issuer} client_id {existing.client_id} is registered as "
                    f"{existing.name!r} with other endpoints: remove it or use another --family"
                )
            remove_platform(existing)
            existing, outcome = None, "re-registered"
        if existing is None:
            add_platform(**fields, deployment_ids=[deployment], allow_teaching_assistants=False)
            return outcome
        if deployment in {d.deployment_id for d in existing.deployments}:
            return "already registered"
        add_platform(
            issuer=existing.issuer, client_id=existing.client_id, deployment_ids=[deployment]
        )
        return "deployment added"
    except PlatformError as exc:
        raise DemoError(f"could not register the sandbox LMS in the tool: {exc}") from exc


def _build_tool(urls: DemoUrls, api_key: str, overrides: Mapping[str, Any] | None) -> Flask:
    from lti_proctor import create_app

    try:
        return create_app({**tool_config(urls, api_key), **(overrides or {})})
    except ConfigError as exc:
        raise DemoError(str(exc)) from exc


def _register(tool_app: Flask, lms_app: Flask) -> str:
    """Register the sandbox LMS in the tool's registry, keep its exam in the tool, commit."""
    from lti_proctor.extensions import db
    from lti_proctor.sandbox.lms_platform import get_sandbox_lms

    lms = get_sandbox_lms(lms_app)
    with tool_app.app_context():
        try:
            described = lms.describe()
            outcome = register_sandbox_platform(described)
            ref = seed_demo_exam(described, lms.course.context_id, lms.site.base_url)
            db.session.commit()
        finally:
            db.session.remove()
    lms.links["final"].custom = {"exam": ref}
    return outcome


def _build_apps(
    urls: DemoUrls, family: str, overrides: Mapping[str, Any] | None
) -> tuple[Flask, Flask, Flask]:
    """The tool, the sandbox LMS and the sandbox proctoring service, each knowing the others."""
    from lti_proctor.sandbox.lms import create_sandbox_lms
    from lti_proctor.sandbox.proctoring import create_sandbox_proctoring

    api_key = SANDBOX_KEY_PREFIX + secrets.token_urlsafe(24)
    tool_app = _build_tool(urls, api_key, overrides)
    lms_app = create_sandbox_lms(
        base_url=urls.lms,
        tool_url=urls.tool,
        family=family,
        custom=exam_custom(urls.lms),
        nrps=True,
    )
    proctoring_app = create_sandbox_proctoring(
        base_url=urls.proctoring,
        api_key=api_key,
        report_delay_s=REPORT_DELAY_S,
        allowed_origins=[urls.tool],
    )
    return tool_app, lms_app, proctoring_app


def _serve(demo: RunningDemo, slots: list[_Slot]) -> None:
    """Point each server at its app and run it in its own daemon thread."""
    apps = (demo.tool_app, demo.lms_app, demo.proctoring_app)
    for slot, app in zip(slots, apps, strict=True):
        slot.app = app
    for server, role in zip(demo.servers, ROLES, strict=True):
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"demo {role}",
            daemon=True,
        )
        thread.start()
        demo.threads.append(thread)


def start_demo(
    *,
    host: str = "127.0.0.1",
    port_base: int = 5000,
    family: str = "moodle",
    overrides: Mapping[str, Any] | None = None,
) -> RunningDemo:
    """Start the tool (port_base), sandbox LMS (+1) and sandbox proctoring (+2); return them.

    port_base 0 picks free ports (tests). overrides go to the tool's settings (e.g. INSTANCE_PATH).
    Raises DemoError (one line) when a port is taken or the settings refuse the sandbox.
    """
    if family not in FAMILIES:
        raise DemoError(f"unknown --family {family!r}: use one of {', '.join(FAMILIES)}")
    servers, slots = bind_servers(host, port_base)
    try:
        tool, lms, proctoring = (f"http://{host}:{server.port}" for server in servers)
        urls = DemoUrls(tool=tool, lms=lms, proctoring=proctoring)
        tool_app, lms_app, proctoring_app = _build_apps(urls, family, overrides)
        registration = _register(tool_app, lms_app)
    except BaseException:
        _close(servers, [])
        raise
    demo = RunningDemo(urls, family, tool_app, lms_app, proctoring_app, registration, servers)
    _serve(demo, slots)
    return demo


def demo_banner(demo: RunningDemo) -> str:
    """The block `lti-proctor demo` prints: what to open and what to click."""
    urls, lms_name = demo.urls, f"sandbox {demo.family.capitalize()}"
    database = str(demo.tool_app.config["SQLALCHEMY_DATABASE_URI"]).removeprefix("sqlite:///")
    return "\n".join(
        [
            f"lti-proctor demo: the tool, a {lms_name} and a sandbox proctoring service, all on "
            "this machine.",
            "",
            f"  Open  {urls.lms}/",
            "",
            '  1. Under "Final exam (proctored)" click "Launch as student": the exam opens in the',
            "     course page, inside the tool's proctoring wrapper.",
            '  2. Allow the sandbox proctoring\'s camera and screen prompts, press "Start exam";',
            f"     the quiz appears with its access code {ACCESS_CODE}. Answer, submit the quiz,",
            '     then press "Finish exam".',
            f"  3. Open the gradebook, {urls.lms}/gradebook, and watch the proctoring column fill",
            '     in; "Launch as instructor" shows the attempts with their report.',
            "",
            f"  tool                {urls.tool}   (data: {database})",
            f"  sandbox LMS         {urls.lms}   ({lms_name}: {demo.registration} in the tool)",
            f"  sandbox proctoring  {urls.proctoring}   (a generated demo key; never a real one)",
            "",
            "Press Ctrl-C to stop.",
        ]
    )
