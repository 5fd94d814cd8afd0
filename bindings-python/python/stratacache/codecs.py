"""Codecs: how values are turned into bytes for the remote tiers.

The envelope records which codec wrote a payload (``raw``, ``json``,
``pickle``, ``postcard``), so every host knows how to read it. Use ``json``
for values an edge worker must read; ``pickle`` (the default) for arbitrary
Python objects, with signing on whenever the tier is shared (a forged pickle
is remote code execution; signed values are verified before they are
unpickled).
"""

from __future__ import annotations

import json
import pickle
from typing import Any, Protocol, runtime_checkable

__all__ = ["JSON", "PICKLE", "RAW", "Codec", "JsonCodec", "PickleCodec", "RawCodec", "get_codec"]


@runtime_checkable
class Codec(Protocol):
    """A codec: ``name`` is the envelope's codec tag (``"raw"``, ``"json"``,
    ``"pickle"`` or ``"postcard"``)."""

    name: str

    def dumps(self, value: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleCodec:
    """``pickle`` at the highest protocol. Only ever reads payloads the core
    has verified (when signing is on) or that come from a tier no one else
    writes."""

    name = "pickle"

    def __init__(self, protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        self.protocol = protocol

    def dumps(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=self.protocol)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)

    @property
    def decoder(self) -> Any:
        """What ``loads`` calls, for the read driver to call directly (looked
        up on every read, so ``pickle.loads`` can still be patched)."""
        return pickle.loads

    def __repr__(self) -> str:
        return f"PickleCodec(protocol={self.protocol})"


class JsonCodec:
    """Compact UTF-8 JSON: readable by every host (the edge worker included)."""

    name = "json"

    def dumps(self, value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        return json.loads(data)

    @property
    def decoder(self) -> Any:
        """What ``loads`` calls, for the read driver to call directly."""
        return json.loads

    def __repr__(self) -> str:
        return "JsonCodec()"


class RawCodec:
    """Bytes stored as they are (values must be ``bytes``)."""

    name = "raw"

    def dumps(self, value: Any) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(
                f"the raw codec stores bytes, not {type(value).__name__}: "
                "use codec='pickle' or codec='json' for other values"
            )
        return bytes(value)

    def loads(self, data: bytes) -> Any:
        return data

    def __repr__(self) -> str:
        return "RawCodec()"


PICKLE = PickleCodec()
JSON = JsonCodec()
RAW = RawCodec()

_BY_NAME = {"pickle": PICKLE, "json": JSON, "raw": RAW}


def get_codec(codec: str | Codec) -> Codec:
    """A codec from its name (``"pickle"``, ``"json"``, ``"raw"``) or a codec
    object (anything with ``name``, ``dumps`` and ``loads``)."""
    if isinstance(codec, str):
        try:
            return _BY_NAME[codec]
        except KeyError:
            raise ValueError(
                f"unknown codec {codec!r}: use 'pickle', 'json', 'raw', or pass an object "
                "with name, dumps() and loads()"
            ) from None
    if not all(hasattr(codec, a) for a in ("name", "dumps", "loads")):
        raise TypeError(f"{codec!r} is not a codec: it needs name, dumps() and loads()")
    if codec.name not in ("raw", "json", "pickle", "postcard"):
        raise ValueError(
            f"codec {codec!r} has name {codec.name!r}; the envelope format knows "
            "'raw', 'json', 'pickle' and 'postcard' (name the format your codec writes)"
        )
    return codec
