"""Request scope: one request cache per request, carried by a ContextVar."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Optional

from . import _core

__all__ = ["RequestScope", "current_scope", "request_scope"]

RequestScope = _core.RequestScope
SCOPE_VAR = _core.request_scope_var()


def current_scope(create: bool = False) -> Optional[RequestScope]:
    """The request scope of the current context (thread, asyncio task or
    ASGI request); with ``create=True`` one is made if there is none."""
    return _core.current_request_scope(create)


@contextlib.contextmanager
def request_scope(force_cache_miss: bool = False) -> Iterator[RequestScope]:
    """Runs the block in a fresh request scope (what the middleware does for
    each request): request caches set inside are gone afterwards, and other
    threads and tasks never see them::

        with request_scope():
            RequestCache("grades").set("user:7", grades)
    """
    scope = RequestScope(force_cache_miss)
    token = SCOPE_VAR.set(scope)
    try:
        yield scope
    finally:
        SCOPE_VAR.reset(token)
        scope.clear()
