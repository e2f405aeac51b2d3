"""The security headers of every response: nosniff, HSTS, Referrer-Policy and each page's CSP.

One after_request hook sets what every response gets; the exam and instructor pages ask
exam_csp() / instructor_csp() for their narrower policies. Origins that go into a policy
(frame-ancestors above all) come only from origin_of(), which rebuilds an origin from a parsed
URL and refuses anything that could inject a directive (`*`, `;`, spaces, quotes).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import Flask, Response, current_app

NONE = "'none'"
HSTS = "max-age=31536000"  # one year; only sent when BASE_URL is https
# A DNS name or IPv4 address (letters, digits, dots, hyphens), or a bracketed IPv6 address.
_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)
_IPV6 = re.compile(r"^[0-9a-f:.]+$")


# Pages without a policy of their own (errors, the launch's notice pages): our own files only.
# frame-ancestors is left open on purpose: an error may be shown before the launch says which
# LMS frames it, and these pages carry nothing but a sentence and a reason code.
def page_csp(form_targets: Iterable[str] = ()) -> str:
    """The default policy, with forms allowed to post to the given origins as well (a page that
    continues a login or launch at the LMS posts its form there)."""
    targets = [o for o in map(origin_of, form_targets) if o]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            " ".join(["form-action 'self'", *dict.fromkeys(targets)]),
        ]
    )


def origin_of(url: str | None) -> str | None:
    """scheme://host[:port] of an http(s) URL, rebuilt from its parts; None for anything else.

    The result is safe inside a CSP source list: a host with `*`, `;`, spaces or quotes, a
    user-info part or a port that is not a number gives None.
    """
    try:
        parts = urlsplit((url or "").strip())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or parts.username or parts.password:
        return None
    if ":" in host:
        if not _IPV6.match(host):
            return None
        host = f"[{host}]"
    elif not _HOST.match(host):
        return None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def frame_ancestors(origins: Iterable[str]) -> str:
    """The frame-ancestors directive: this tool and the validated origins among origins."""
    valid = [o for o in dict.fromkeys(origins) if origin_of(o) == o]
    return " ".join(["frame-ancestors 'self'", *valid])


def exam_csp(
    *, sdk_url: str, api_base: str | None, exam_url: str | None, lms_origins: Iterable[str]
) -> str:
    """The wrapper page's policy: the SDK from the service, the exam framed from the LMS."""
    sdk = origin_of(sdk_url) or ""
    api = origin_of(api_base)
    connect = " ".join(dict.fromkeys(o for o in ("'self'", sdk, api) if o))
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {sdk}".strip(),
            f"connect-src {connect}",
            # The SDK's widget may inject styles and show camera snapshots.
            f"style-src 'self' 'unsafe-inline' {sdk}".strip(),
            f"img-src 'self' data: blob: {sdk}".strip(),
            "media-src 'self' blob:",
            f"frame-src {origin_of(exam_url) or NONE}",
            "object-src 'none'",
            frame_ancestors(lms_origins),
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def instructor_csp(lms_origins: Iterable[str]) -> str:
    """The instructor pages' policy: our own script only (times in the reader's zone), framed
    only by the launching LMS."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self'",
            "object-src 'none'",
            frame_ancestors(lms_origins),
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


DEFAULT_CSP = page_csp()


def secure_headers(response: Response) -> Response:
    """Add the headers every response carries; a page's own CSP or Referrer-Policy stays."""
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Referrer-Policy", "no-referrer")  # signed tokens travel in our URLs
    if str(current_app.config.get("BASE_URL", "")).startswith("https://"):
        headers.setdefault("Strict-Transport-Security", HSTS)
    if response.mimetype == "text/html":
        headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    return response


def init_app(app: Flask) -> None:
    """Run secure_headers() on every response of the tool."""
    app.after_request(secure_headers)
