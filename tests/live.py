"""Live HTTP servers and a scripted browser for end-to-end tests.

live_server() serves a WSGI app with werkzeug on 127.0.0.1 (a free port) from a daemon thread.
Browser is a requests.Session that follows redirects, iframes and auto-submitting forms, the way a
browser does with JavaScript on; pages are parsed with html.parser.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin

import requests
from flask import Flask
from werkzeug.serving import make_server

HTTP_TIMEOUT_S = 10


@contextmanager
def live_server(app: Flask | Callable[[str], Flask]) -> Iterator[str]:
    """Serve app on http://127.0.0.1:<free port>; yields its base URL.

    Pass a builder (base URL -> app) instead of an app when the app must know its own URL
    before it exists (the sandbox LMS does).
    """
    holder: dict[str, Flask] = {}

    def dispatch(environ, start_response):  # type: ignore[no-untyped-def]
        return holder["app"](environ, start_response)

    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    base_url = f"http://127.0.0.1:{server.server_port}"
    holder["app"] = app if isinstance(app, Flask) else app(base_url)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.02},  # shutdown() waits up to one poll interval
        name=f"live {base_url}",
        daemon=True,
    )
    thread.start()
    try:
        yield base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Form:
    """A form on a page: where it posts and its fields in order."""

    id: str
    action: str
    method: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    # The page's script submits it once its own work is done (the tool's Platform Storage login
    # page: where nothing answers its messages and cookies work, it goes on).
    auto: bool = False


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []
        self.iframes: list[str] = []
        self.scripts: list[str] = []
        self._href: str | None = None
        self._text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(
                Form(
                    a.get("id", ""),
                    a.get("action", ""),
                    a.get("method", "get").lower(),
                    auto="data-auto-submit" in a,
                )
            )
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1].fields.append((a["name"], a.get("value", "")))
        elif tag == "a":
            self._href, self._text = a.get("href", ""), []
        elif tag == "iframe":
            self.iframes.append(a.get("src", ""))
        elif tag == "script":
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self._href = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text.append(data)
        if self._in_script:
            self.scripts.append(data)


def parse_forms(html: str) -> list[Form]:
    """The forms of an HTML document."""
    parser = _PageParser()
    parser.feed(html)
    return parser.forms


class Page:
    """A fetched HTML page and what a browser would act on in it."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.url = response.url
        self.status = response.status_code
        self.text = response.text
        parser = _PageParser()
        parser.feed(self.text)
        self.forms, self.links, self.iframes = parser.forms, parser.links, parser.iframes
        self._scripts = "".join(parser.scripts)

    def auto_submitted_form(self) -> Form | None:
        """The form the page's script submits on load, if any."""
        for form in self.forms:
            if form.auto or (form.id and f'getElementById("{form.id}").submit()' in self._scripts):
                return form
        return None

    def link(self, text: str) -> str:
        """The absolute URL of the first link whose text starts with text."""
        for label, href in self.links:
            if label.startswith(text):
                return urljoin(self.url, href)
        raise AssertionError(f"no link {text!r} on {self.url}: {self.links}")


class Browser:
    """A requests.Session that behaves like a browser with JavaScript: it follows redirects,
    loads the first iframe of a page and submits auto-submitting forms, until a page rests."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.history: list[Page] = []

    def open(self, url: str, *, max_steps: int = 10) -> Page:
        """GET url and follow what a browser would, up to max_steps hops; the resting page."""
        page = self._record(self.session.get(url, timeout=HTTP_TIMEOUT_S))
        for _ in range(max_steps):
            follow = self._next(page)
            if follow is None:
                return page
            page = self._record(follow)
        raise AssertionError(f"more than {max_steps} hops from {url}")

    def _next(self, page: Page) -> requests.Response | None:
        form = page.auto_submitted_form()
        if form is not None:
            target = urljoin(page.url, form.action)
            if form.method == "post":
                return self.session.post(target, data=form.fields, timeout=HTTP_TIMEOUT_S)
            return self.session.get(target, params=form.fields, timeout=HTTP_TIMEOUT_S)
        if page.iframes:
            return self.session.get(urljoin(page.url, page.iframes[0]), timeout=HTTP_TIMEOUT_S)
        return None

    def _record(self, response: requests.Response) -> Page:
        page = Page(response)
        self.history.append(page)
        return page
