"""``@cached``: read-through caching of a function's results."""

from __future__ import annotations

import functools
import inspect
import re
from typing import Any, Callable, Optional, TypeVar, Union

from . import _core
from .keys import Key
from .tiered import DEFAULT_TTL, TieredCache

__all__ = ["cached", "default_cache"]

F = TypeVar("F", bound=Callable[..., Any])

_default: Optional[TieredCache] = None


def default_cache() -> TieredCache:
    """The cache ``@cached`` uses when none is given: the Django cache from
    ``settings.STRATACACHE`` when Django is configured, else a process-wide
    cache with only the request and local tiers."""
    global _default
    try:
        from django.conf import settings

        if settings.configured:
            from .django import get_cache

            return get_cache()
    except ImportError:
        pass
    if _default is None:
        _default = TieredCache([], name="process-default")
    return _default


def _namespace_for(fn: Callable) -> str:
    name = f"{fn.__module__}.{fn.__qualname__}".replace("<locals>.", "").replace("<lambda>", "lambda")
    name = re.sub(r"[^!-~]|[|%]", "_", name)
    # Namespaces starting with the reserved prefix (a format identifier that
    # keeps its old name, see docs/key-format.md) hold the core's own entries.
    if name.startswith(_core.RESERVED_PREFIX):
        name = "fn." + name
    return name[-64:]


def _part(value: Any, name: str) -> Any:
    if value is None:
        return "None"
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (str, int, bytes)):
        return value
    if isinstance(value, float):
        return repr(value)
    raise TypeError(
        f"@cached cannot put argument {name}={value!r} ({type(value).__name__}) in a cache key: "
        "pass str, int, bytes, float, bool or None, or give @cached(key=lambda *a, **kw: ...)"
    )


def cached(
    ttl: Any = DEFAULT_TTL,
    *,
    cache: Union[TieredCache, Callable[[], TieredCache], None] = None,
    namespace: Optional[str] = None,
    version: int = 1,
    key: Optional[Callable[..., Any]] = None,
) -> Callable[[F], F]:
    """Caches a function's results in a ``TieredCache``, keyed by its
    arguments (a versioned key: bump ``version`` when the result's shape or
    meaning changes)::

        @cached(ttl=3600, version=2)
        def course_outline(course_id: str) -> Outline: ...

    Works for ``async def`` functions too. ``cache``: a ``TieredCache`` or a
    callable returning one (default: :func:`default_cache`). ``key``: a
    function of the same arguments returning a str, or a tuple of key parts.
    The wrapper has ``.refresh(*args, **kwargs)`` (recompute and store) and
    ``.key_for(*args, **kwargs)``.
    """

    def decorate(fn: F) -> F:
        keys = Key(namespace or _namespace_for(fn), version)
        signature = inspect.signature(fn)

        def cache_of() -> TieredCache:
            if cache is None:
                return default_cache()
            if isinstance(cache, TieredCache):
                return cache
            return cache()

        def key_for(*args: Any, **kwargs: Any) -> str:
            if key is not None:
                made = key(*args, **kwargs)
                if isinstance(made, tuple):
                    return keys.build(*made)
                return keys.build(str(made))
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            parts = []
            for name, value in bound.arguments.items():
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_POSITIONAL:
                    parts.extend(_part(v, name) for v in value)
                elif kind is inspect.Parameter.VAR_KEYWORD:
                    for k in sorted(value):
                        parts.extend((k, _part(value[k], k)))
                else:
                    parts.append(_part(value, name))
            return keys.build(*parts)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                async def load() -> Any:
                    return await fn(*args, **kwargs)

                return await cache_of().aget_or_load(key_for(*args, **kwargs), load, ttl)

            async def arefresh(*args: Any, **kwargs: Any) -> Any:
                value = await fn(*args, **kwargs)
                await cache_of().aset_all_tiers(key_for(*args, **kwargs), value, ttl)
                return value

            awrapper.refresh = arefresh  # type: ignore[attr-defined]
            awrapper.key_for = key_for  # type: ignore[attr-defined]
            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return cache_of().get_or_load(key_for(*args, **kwargs), lambda: fn(*args, **kwargs), ttl)

        def refresh(*args: Any, **kwargs: Any) -> Any:
            return cache_of().refresh(key_for(*args, **kwargs), lambda: fn(*args, **kwargs), ttl)

        wrapper.refresh = refresh  # type: ignore[attr-defined]
        wrapper.key_for = key_for  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    if callable(ttl) and not isinstance(ttl, (int, float)) and ttl is not DEFAULT_TTL and ttl is not None:
        fn, ttl = ttl, DEFAULT_TTL  # used as @cached without parentheses
        return decorate(fn)  # type: ignore[return-value]
    return decorate
