"""Wrong ``BACKEND`` paths a user might try, each answered with the right
one (``stratacache.django.backend.TieredCacheBackend``).

- a class that is not a backend (``stratacache.TieredCache``,
  ``stratacache.django.TieredCache``, ``stratacache.django.edx.TieredCache``)
  refuses Django's ``(LOCATION, params)`` call with the right path;
- a near name on an existing module (``stratacache.django.backend.TieredCache``,
  ``stratacache.django.TieredCacheBackend``, ...) is a class that does the same;
- a module that does not exist under ``stratacache.`` or the old name
  ``tiercache.`` fails to import with the right path in the message (a finder
  placed last on ``sys.meta_path``, so a real module always wins).

::

    >>> from django.core.cache.backends.base import InvalidCacheBackendError
    >>> # CACHES = {"default": {"BACKEND": "tiercache.django.backend.TieredCacheBackend"}}
    >>> # InvalidCacheBackendError: Could not find backend ...: tiercache was renamed
    >>> # stratacache: use "BACKEND": "stratacache.django.backend.TieredCacheBackend"
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

BACKEND_PATH = "stratacache.django.backend.TieredCacheBackend"

#: Names a user may write for the backend class on an existing module.
NEAR_NAMES = frozenset(
    {
        "TieredCacheBackend",
        "TieredCache",
        "StratacacheBackend",
        "StrataCacheBackend",
        "StratacacheCache",
        "CacheBackend",
        "Backend",
        "TieredBackend",
        "Cache",
    }
)


def wrong_backend_message(path: str) -> str:
    """The message for a wrong ``BACKEND`` path."""
    return (
        f'{path!r} is not a Django cache backend: use "BACKEND": "{BACKEND_PATH}" in CACHES '
        "(see docs/django-backend.md)"
    )


def refuse_django_call(cls: type, args: tuple) -> None:
    """Raises the wrong-path error if ``cls`` is being called as Django
    calls a backend: ``cls(LOCATION, params_dict)``."""
    if len(args) == 2 and isinstance(args[1], dict):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(wrong_backend_message(f"{cls.__module__}.{cls.__qualname__}"))


def wrong_name_class(module: str, name: str) -> type:
    """A stand-in for ``module.name`` that raises the wrong-path error when
    Django instantiates it."""

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(wrong_backend_message(f"{module}.{name}"))

    return type(
        name, (), {"__init__": __init__, "__module__": module, "__doc__": wrong_backend_message(name)}
    )


class _WrongPathFinder(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: asked only for modules no other finder has."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        top = fullname.split(".", 1)[0]
        if top == "tiercache":
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: tiercache was renamed stratacache; for the Django cache "
                f'use "BACKEND": "{BACKEND_PATH}"',
                name=fullname,
            )
        if top == "stratacache" and "." in fullname:
            raise ModuleNotFoundError(
                f'No module named {fullname!r}; the Django cache backend is "{BACKEND_PATH}"',
                name=fullname,
            )
        return None


def install() -> None:
    """Puts the finder last on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _WrongPathFinder) for f in sys.meta_path):
        sys.meta_path.append(_WrongPathFinder())
