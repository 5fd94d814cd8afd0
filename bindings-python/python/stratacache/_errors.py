"""Exceptions raised by stratacache (pure Python, so they pickle and subclass
like any other exception). Every message says what to do next."""

from __future__ import annotations


class StratacacheError(Exception):
    """Base class of stratacache's own errors."""


class CachedResponseError(StratacacheError):
    """A ``CachedResponse`` was misused: it refuses ``bool()`` and comparison
    with anything but another ``CachedResponse`` (the edx-django-utils
    contract), because ``if response:`` cannot tell a cached ``None`` from a
    miss."""

    USAGE_MESSAGE = "CachedResponse was misused. Try the attributes is_found, value or key."

    def __init__(self, message: str = USAGE_MESSAGE) -> None:
        super().__init__(message)


class CachedResponseMissError(CachedResponseError, AttributeError):
    """``CachedResponse.value`` was read on a miss. Check ``is_found`` first,
    or use ``get_value_or_default(default)``."""

    def __init__(self, message: str = "the cached response is a miss and has no value") -> None:
        super().__init__(message)


class EnvelopeError(StratacacheError, ValueError):
    """Bytes from a remote tier could not be used (truncated, tampered,
    unsigned when signing is required, ...). ``kind`` is a stable name such as
    ``"bad_signature"``; the read path treats all of them as a miss."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class TierError(StratacacheError):
    """A remote tier failed while the cache is in strict mode (outside strict
    mode tier failures are counted and the read falls back to the next tier
    or the loader)."""

    def __init__(self, tier: str, message: str, text: str | None = None) -> None:
        super().__init__(text or f"tier {tier!r} failed in strict mode: {message}")
        self.tier = tier
        self.message = message


class LoaderError(StratacacheError):
    """A loader raised or returned no value for a key; the original exception
    is chained as ``__cause__`` when there is one."""


class ConfigurationError(StratacacheError, ValueError):
    """The cache configuration is invalid; the message names the setting."""


class AnswerError(StratacacheError, RuntimeError):
    """The core refused a driver's answer: it answered a step the read was
    not waiting for, or with the wrong number of values. A bug in the
    driver (``stratacache._driver``), never caused by cached data."""


def describe(exc: BaseException) -> str:
    """An exception as one line for logs and tier errors.

    >>> describe(ValueError("bad key"))
    'ValueError: bad key'
    """
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
