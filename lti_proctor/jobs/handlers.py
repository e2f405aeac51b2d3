"""Job kind -> handler function: the registry the worker looks kinds up in.

A handler takes the job's payload dict, returns nothing, is idempotent (a job may run again after
a worker dies) and raises per the protocol in jobs/retry.py. Handlers live in the modules listed
in HANDLER_MODULES and register themselves with `@register("area.action")`; the worker imports
those modules lazily, on its first lookup, so no import cycle runs through this module.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from lti_proctor.jobs.retry import UnknownJobKindError

Handler = Callable[[dict[str, Any]], None]

# Modules that define handlers; add one line per module (e.g. "lti_proctor.jobs.ags_jobs").
HANDLER_MODULES: list[str] = ["lti_proctor.jobs.gradebook", "lti_proctor.jobs.reports"]

HANDLERS: dict[str, Handler] = {}

_loaded = False
_load_lock = threading.Lock()


def register(kind: str) -> Callable[[Handler], Handler]:
    """Decorator: make the decorated function the handler of job kind `kind`."""

    def decorator(func: Handler) -> Handler:
        existing = HANDLERS.get(kind)
        if existing is not None and _name(existing) != _name(func):
            raise ValueError(f"job kind {kind!r} already has a handler: {existing!r}")
        HANDLERS[kind] = func
        return func

    return decorator


def _name(func: Handler) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def load_handlers() -> None:
    """Import every module of HANDLER_MODULES once, so their handlers are registered."""
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if not _loaded:
            for name in HANDLER_MODULES:
                importlib.import_module(name)
            _loaded = True


def get_handler(kind: str) -> Handler:
    """Return the handler of kind; raise UnknownJobKindError when there is none."""
    load_handlers()
    try:
        return HANDLERS[kind]
    except KeyError:
        raise UnknownJobKindError(f"no handler is registered for job kind {kind!r}") from None
