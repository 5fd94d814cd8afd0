"""Versioned keys (format ``tiercache-key-1``, shared with every host)."""

from __future__ import annotations

from typing import Union

from . import _core

__all__ = ["BuiltKey", "Key", "normalize_key", "safe_key"]

Part = Union[str, int, bytes]

safe_key = _core.safe_key


class BuiltKey(str):
    """A key made by :class:`Key`: a valid memcached key, used as it is by
    every cache (plain ``str`` keys go through :func:`safe_key` first)."""

    __slots__ = ()


class Key:
    """Builds versioned keys ``{namespace}|v{version}|{part}|...``.

    Bump ``version`` to make every key of the namespace new: old entries are
    never read again and expire on their own (no invalidation needed)::

        outline = Key("course_outline", version=3)
        outline("course-v1:edX+DemoX+Demo_Course", 42)
        # 'course_outline|v3|course-v1:edX+DemoX+Demo_Course|#42'

    Parts are ``str``, ``int`` or ``bytes``; different part lists always give
    different keys; keys longer than ``max_len`` keep a readable prefix and
    end in a digest. The same inputs give the same key in Python, Rust and
    the edge worker.
    """

    __slots__ = ("_builder",)

    def __init__(self, namespace: str, version: int = 1, max_len: int = _core.DEFAULT_MAX_KEY_LEN):
        self._builder = _core.KeyBuilder(namespace, version, max_len)

    @property
    def namespace(self) -> str:
        return self._builder.namespace

    @property
    def version(self) -> int:
        return self._builder.version

    @property
    def max_len(self) -> int:
        return self._builder.max_len

    def build(self, *parts: Part) -> BuiltKey:
        """The key for ``parts``."""
        return BuiltKey(self._builder.build(parts))

    __call__ = build

    def bump(self) -> Key:
        """The same namespace at the next version."""
        return Key(self.namespace, self.version + 1, self.max_len)

    def __repr__(self) -> str:
        return f"Key({self.namespace!r}, version={self.version}, max_len={self.max_len})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and (self.namespace, self.version, self.max_len) == (
            other.namespace,
            other.version,
            other.max_len,
        )

    def __hash__(self) -> int:
        return hash((self.namespace, self.version, self.max_len))


def normalize_key(key: str, max_len: int = _core.DEFAULT_MAX_KEY_LEN) -> str:
    """The key a cache uses for ``key``: keys from :class:`Key` as they are,
    any other string through :func:`safe_key` (so spaces, Unicode, control
    characters and 10 KB keys all work, and never collide)."""
    if type(key) is BuiltKey:
        return key
    if not isinstance(key, str):
        raise TypeError(
            f"cache keys are str, not {type(key).__name__}: build them with stratacache.Key "
            "or convert them with str()"
        )
    return _core.safe_key(key, max_len)
