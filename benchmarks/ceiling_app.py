"""The ceiling: a bare LTI launch that does only the work a launch cannot avoid (benchmark only).

Flask like the tool; per login one Redis SET of the nonce and a redirect with a state cookie;
per launch the state cookie checked, the RS256 id_token verified with a key parsed once per
process, the nonce consumed with one Redis GETDEL, the start kept with one Redis SET and a small
starting page whose form the browser posts at once (the tool's shape since issue 11); per start
one Redis GET, one POST to the proctoring service through a pooled requests session, one indexed
SELECT and one INSERT (or, on a relaunch, UPDATE) in PostgreSQL through psycopg, and a small
page rendered with Jinja. No ORM, no migrations, no checks beyond those. Settings come as JSON
in LTI_PROCTOR_CEILING_CONFIG (ratio.py writes them).
Nothing in lti_proctor imports this.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import jwt
import psycopg
import redis
import requests
from flask import Flask, make_response, redirect, render_template_string, request

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
</head><body><main class="question-wrapper" data-api-token="{{ token }}"
data-attempt="{{ attempt }}"><h1>{{ title }}</h1><p>{{ name }}</p></main></body></html>"""

STARTING = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Starting</title>
</head><body><form method="post" action="/exam/start" data-auto-submit>
<input type="hidden" name="token" value="{{ token }}"></form></body></html>"""

POOL = 15

SCHEMA = """CREATE TABLE IF NOT EXISTS ceiling_attempt (
  id bigserial PRIMARY KEY, exam text NOT NULL, learner text NOT NULL, token text,
  created_at timestamptz NOT NULL DEFAULT now(), UNIQUE (exam, learner))"""


def create_ceiling(config: dict[str, Any]) -> Flask:
    """The ceiling app for one platform (issuer, client_id, endpoints in config)."""
    app = Flask(__name__)
    platform = config["platform"]
    store = redis.Redis.from_url(config["redis_url"], socket_timeout=2, decode_responses=True)
    prefix = config["prefix"]
    # A pool of at most POOL autocommit connections, kept (the tool's pool holds 15): one per
    # thread or greenlet would pass PostgreSQL's connection limit under gevent at c=32.
    idle: queue.LifoQueue[psycopg.Connection[Any]] = queue.LifoQueue()
    slots = threading.BoundedSemaphore(POOL)

    @contextmanager
    def connection() -> Iterator[psycopg.Connection[Any]]:
        with slots:
            try:
                conn = idle.get_nowait()
            except queue.Empty:
                conn = psycopg.connect(config["pg_dsn"], autocommit=True)
            try:
                yield conn
            finally:
                idle.put(conn)

    with connection() as conn:
        conn.execute(SCHEMA)
    service = requests.Session()
    keys: dict[str, Any] = {}
    keys_lock = threading.Lock()

    def signing_key(kid: str) -> Any:
        with keys_lock:
            if kid not in keys:  # once per process: fetched and parsed, then kept
                jwks = service.get(platform["key_set_url"], timeout=5).json()
                for jwk in jwks["keys"]:
                    keys[jwk["kid"]] = jwt.PyJWK(jwk).key
            return keys[kid]

    @app.route("/lti/login", methods=["GET", "POST"])
    def login() -> Any:
        params = request.values
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        store.set(prefix + "nonce:" + nonce, state, px=900_000)
        query = {
            "scope": "openid",
            "response_type": "id_token",
            "response_mode": "form_post",
            "prompt": "none",
            "client_id": platform["client_id"],
            "redirect_uri": config["base_url"] + "/lti/launch",
            "state": state,
            "nonce": nonce,
            "login_hint": params.get("login_hint", ""),
        }
        if params.get("lti_message_hint"):
            query["lti_message_hint"] = params["lti_message_hint"]
        response = redirect(platform["auth_login_url"] + "?" + urlencode(query))
        response.set_cookie("lti1p3-" + state, state, max_age=900, httponly=True, samesite="Lax")
        return response

    @app.post("/lti/launch")
    def launch() -> Any:
        state = request.form["state"]
        if request.cookies.get("lti1p3-" + state) != state:
            return "state", 400
        token = request.form["id_token"]
        claims = jwt.decode(
            token,
            key=signing_key(jwt.get_unverified_header(token)["kid"]),
            algorithms=["RS256"],
            audience=platform["client_id"],
            issuer=platform["issuer"],
        )
        if store.getdel(prefix + "nonce:" + claims["nonce"]) != state:
            return "nonce", 400
        link = claims["https://purl.imsglobal.org/spec/lti/claim/resource_link"]["id"]
        start = {
            "link": link,
            "exam": f"{claims['iss']}|{link}",
            "learner": f"{claims['iss']}|{claims['sub']}",
            "name": claims.get("name", ""),
        }
        key = secrets.token_urlsafe(16)
        store.set(prefix + "start:" + key, json.dumps(start), px=900_000)
        return make_response(render_template_string(STARTING, token=key))

    @app.post("/exam/start")
    def start() -> Any:
        kept = store.get(prefix + "start:" + request.form.get("token", ""))
        if kept is None:
            return "start", 400
        started = json.loads(kept)
        link, exam, learner = started["link"], started["exam"], started["learner"]
        answer = service.post(
            config["service_url"],
            json={"assignment": exam, "student": learner},
            headers={"X-Authorization": config["api_key"]},
            timeout=10,
        )
        try:
            session_token = str(answer.json()["token"])
        except (ValueError, KeyError, TypeError):
            session_token = secrets.token_urlsafe(16)
        with connection() as conn, conn.transaction():
            row = conn.execute(
                "SELECT id FROM ceiling_attempt WHERE exam = %s AND learner = %s", (exam, learner)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO ceiling_attempt (exam, learner, token) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (exam, learner, session_token),
                )
            else:
                conn.execute(
                    "UPDATE ceiling_attempt SET token = %s WHERE id = %s", (session_token, row[0])
                )
        html = render_template_string(
            PAGE, title=link, name=started["name"], token=session_token, attempt=exam
        )
        return make_response(html)

    return app


def build_app() -> Flask:
    """The ceiling from LTI_PROCTOR_CEILING_CONFIG (gunicorn: `ceiling_app:build_app()`)."""
    return create_ceiling(json.loads(os.environ["LTI_PROCTOR_CEILING_CONFIG"]))
