"""Keys, shared with every host: versioned keys (format ``tiercache-key-1``),
the mapping of plain string keys to remote keys (``stratacache-plain-key-1``)
and signing keys derived from a secret. Every rule is the Rust core's."""

from __future__ import annotations

from typing import Union

from . import _core

__all__ = ["BuiltKey", "Key", "normalize_key", "plain_key", "safe_key", "signing_keys_from_secret"]

Part = Union[str, int, bytes]

safe_key = _core.safe_key
plain_key = _core.plain_key


class BuiltKey(str):
    """A key made by :class:`Key`: a valid memcached key. Every cache maps it
    like any ``str`` (:func:`plain_key` keeps it as it is), so ``str(key)``
    reaches the same entry::

        key = Key("ns", 1)("a b")
        assert plain_key(str(key)) == key
    """

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
    """The remote key a cache uses for ``key`` (the core's :func:`plain_key`):
    a valid memcached key (a :class:`Key` result, ``str()`` of one, or any
    printable ASCII key without spaces) as it is, any other string (spaces,
    Unicode, control characters, 10 KB, empty) escaped under the ``%~``
    prefix. Different strings never share a remote key, and the edge worker
    maps the same string to the same key::

        normalize_key("user:42")    # 'user:42'
        normalize_key("a b")        # '%~a%20b'
    """
    if not isinstance(key, str):
        raise TypeError(
            f"cache keys are str, not {type(key).__name__}: build them with stratacache.Key "
            "or convert them with str()"
        )
    return _core.plain_key(key, max_len)


def signing_keys_from_secret(secret: Union[str, bytes], key_id: str = "k1") -> list:
    """A signing keyring ``[(key_id, key)]`` derived from an application
    secret (such as Django's ``SECRET_KEY``) by the core, exactly as the edge
    worker's ``signingKeysFromSecret`` derives it: the HMAC key is never the
    secret itself::

        cache = TieredCache([MemcachedTier(servers)],
                            signing_keys=signing_keys_from_secret(settings.SECRET_KEY))
    """
    return [(key_id, _core.signing_key_from_secret(secret))]
