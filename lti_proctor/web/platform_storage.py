"""The login's answer and the launch's storage check page: LTI Platform Storage in the browser.

A login without lti_storage_target answers with a redirect that sets the state cookie. With it,
the answer is a page whose script (static/lti_storage.js) puts the state and nonce into the
LMS's storage by postMessage, then continues to the LMS's auth URL; when neither the storage nor
cookies work it offers the launch in a new window, where the tool is first-party. The launch that
comes back without a cookie gets the check page, which reads the values back and posts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import current_app, redirect, render_template, url_for
from werkzeug.wrappers import Response

from lti_proctor.lti.launch import StorageCheckRequired
from lti_proctor.lti.oidc import (
    LOGIN_PARAMS,
    STORAGE_NONCE_KEY,
    STORAGE_STATE_KEY,
    LaunchSettings,
    LoginRedirect,
    set_state_cookie,
)
from lti_proctor.web.headers import page_csp

# Login parameters a new window repeats (lti_storage_target is left out: cookies work there).
_NEW_WINDOW_PARAMS = (*LOGIN_PARAMS, "deployment_id")


def login_response(
    login: LoginRedirect, params: Mapping[str, str], settings: LaunchSettings
) -> Response:
    """The redirect to the LMS's auth URL, or the page that first uses Platform Storage."""
    if login.storage is None:
        response = redirect(login.auth_url)
    else:
        parts = urlsplit(login.auth_url)
        response = current_app.make_response(
            render_template(
                "lti/storage_login.html",
                storage=login.storage,
                action=urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")),
                fields=parse_qsl(parts.query, keep_blank_values=True),
                state=login.state,
                nonce=login.nonce,
                state_key=STORAGE_STATE_KEY + login.state,
                nonce_key=STORAGE_NONCE_KEY + login.state,
                new_window_url=_new_window_url(params),
            )
        )
        _private(response)
        # Its form continues the login at the LMS's auth URL: the policy lets it post there.
        response.headers["Content-Security-Policy"] = page_csp([login.auth_url])
    set_state_cookie(response, login.state, settings)  # wherever cookies work, they suffice
    return response


def launch_check_page(check: StorageCheckRequired, id_token: str) -> Response:
    """The page that reads the state and nonce back from the LMS and posts the launch again."""
    html = render_template(
        "lti/storage_launch.html",
        storage=check.storage,
        id_token=id_token,
        state=check.state,
        state_key=STORAGE_STATE_KEY + check.state,
        nonce_key=STORAGE_NONCE_KEY + check.state,
    )
    response = _private(current_app.make_response(html))
    # The check's answer is judged by its Origin header, which browsers send as "null" under
    # no-referrer; same-origin keeps it for our own post and still tells other sites nothing.
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def _new_window_url(params: Mapping[str, str]) -> str:
    kept = [(name, params[name]) for name in _NEW_WINDOW_PARAMS if params.get(name)]
    return str(current_app.config["BASE_URL"]) + url_for("lti.login") + "?" + urlencode(kept)


def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
