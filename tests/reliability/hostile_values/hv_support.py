"""Hostile values for the remote tiers: envelope bytes built and corrupted by
hand, independently of the core's encoder, so a corruption never depends on
the code under test.

An envelope (``core/src/envelope.rs``, format version 1) is::

    89 54 43 | 01 | codec u8, flags u8, created varint, soft Option<varint>,
                    hard Option<varint>, cost varint, payload_len varint
             | body (payload, or its LZ4 block) | key id | key id len | HMAC-SHA256

and the MAC (when signed) is HMAC-SHA256(secret, be64(len(key)) + key +
every byte before the MAC): signatures are bound to the key a value is read
under.

``CASES`` lists every corruption by name; ``corrupt(case, ...)`` turns the
valid bytes stored under a key into the hostile bytes to write back.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

MAGIC = b"\x89TC"
VERSION = 1
CODECS = {"raw": 0, "json": 1, "pickle": 2, "postcard": 3}
FLAG_COMPRESSED = 0x01
FLAG_MANIFEST = 0x02
FLAG_SIGNED = 0x04
MAC_LEN = 32

RUN = uuid.uuid4().hex[:8]  # a fresh key space per run: leftovers never matter

KEY_ID = "2025a"
SECRET = b"a hostile-values secret, 32 B..!"
KEYRING = [(KEY_ID, SECRET)]
EVIL_KEY_ID = "evil"
EVIL_SECRET = b"an attacker's own secret, 32 B.!"

#: The reader's payload limit in every test (the writer's is the default 64 MiB).
READER_MAX_PAYLOAD = 64 * 1024


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


@dataclass
class Parsed:
    """Where the parts of a (valid) envelope are."""

    codec: int
    flags: int
    header: bytes  # the postcard header, without magic and version
    body_start: int
    body_end: int  # where the key id starts (or the end, if unsigned)
    payload_len: int
    key_id: Optional[str]

    @property
    def signed(self) -> bool:
        return bool(self.flags & FLAG_SIGNED)


def parse(data: bytes) -> Parsed:
    assert data[:3] == MAGIC and data[3] == VERSION, data[:8]
    pos = 4
    codec, flags = data[pos], data[pos + 1]
    pos += 2
    _created, pos = read_varint(data, pos)
    for _ in range(2):  # soft, hard: Option<varint>
        tag = data[pos]
        pos += 1
        if tag:
            _, pos = read_varint(data, pos)
    _cost, pos = read_varint(data, pos)
    payload_len, pos = read_varint(data, pos)
    key_id = None
    body_end = len(data)
    if flags & FLAG_SIGNED:
        id_len = data[-MAC_LEN - 1]
        body_end = len(data) - MAC_LEN - 1 - id_len
        key_id = data[body_end : body_end + id_len].decode()
    return Parsed(codec, flags, data[4:pos], pos, body_end, payload_len, key_id)


def envelope(
    payload: bytes,
    *,
    codec: str = "pickle",
    key: Optional[str] = None,
    keyring: Optional[list] = KEYRING,
    flags: int = 0,
    payload_len: Optional[int] = None,
    created_at_ms: int = 1_700_000_000_000,
    body: Optional[bytes] = None,
    mac: Optional[bytes] = None,
) -> bytes:
    """Envelope bytes, signed for ``key`` with ``keyring``'s first key
    (``keyring=None``: unsigned). ``payload_len`` and ``body`` override what
    the header claims and what follows it; ``mac`` replaces the real MAC."""
    signed = keyring is not None
    flags |= FLAG_SIGNED if signed else 0
    header = (
        bytes([CODECS[codec], flags])
        + varint(created_at_ms)
        + b"\x00\x00"  # no soft, no hard expiry
        + varint(0)
        + varint(len(payload) if payload_len is None else payload_len)
    )
    out = MAGIC + bytes([VERSION]) + header + (payload if body is None else body)
    if signed:
        key_id, secret = keyring[0]
        out += key_id.encode() + bytes([len(key_id)])
        assert key is not None, "a signed envelope is bound to a key"
        real = hmac.new(secret, len(key.encode()).to_bytes(8, "big") + key.encode() + out, hashlib.sha256)
        out += real.digest() if mac is None else mac
    return out


def resign(data: bytes, key: str, keyring: list = KEYRING) -> bytes:
    """``data`` (signed, possibly edited before the trailer) with a MAC that
    verifies for ``key``: what a writer holding the secret would produce."""
    id_len = data[-MAC_LEN - 1]
    signed = data[:-MAC_LEN]
    key_id = signed[-1 - id_len : -1].decode()
    secret = dict(keyring)[key_id]
    return (
        signed
        + hmac.new(
            secret, len(key.encode()).to_bytes(8, "big") + key.encode() + signed, hashlib.sha256
        ).digest()
    )


class Evil:
    """Unpickling this runs ``os.mkdir(path)``: the side effect a test looks for."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def evil_pickle(marker: Path) -> bytes:
    return pickle.dumps(Evil(str(marker)), protocol=pickle.HIGHEST_PROTOCOL)


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[index] ^= mask
    return bytes(out)


@dataclass(frozen=True)
class Case:
    name: str
    group: str  # tamper | truncate | replay | oversized | pickle
    what: str  # one line for the docs
    counter: str = "rejected"  # the tier counter that must move
    #: bytes to store under the key: fn(valid bytes under the key, ctx)
    make: Optional[Callable] = None


class Ctx:
    """What a corruption may need besides the valid bytes."""

    def __init__(self, key: str, other_valid: bytes, marker: Path, keyring: Optional[list] = KEYRING) -> None:
        self.key = key
        self.other_valid = other_valid  # valid bytes stored under another key
        self.marker = marker
        self.keyring = keyring  # what the oversized cases sign with (None: unsigned)


def _mid_body(p: Parsed) -> int:
    return p.body_start + (p.body_end - p.body_start) // 2


def _trunc(at: Callable[[bytes, Parsed], int]) -> Callable:
    return lambda v, ctx: v[: at(v, parse(v))]


CASES = [
    # -- (a) one flipped byte --------------------------------------------------
    Case("flip_magic", "tamper", "first byte of the magic flipped", make=lambda v, c: flip(v, 0, 0x80)),
    Case("flip_version", "tamper", "format version byte 1 -> 3", make=lambda v, c: flip(v, 3, 0x02)),
    Case("flip_codec", "tamper", "codec tag pickle (2) -> raw (0)", make=lambda v, c: flip(v, 4, 0x02)),
    Case("flip_flags", "tamper", "signed flag cleared", make=lambda v, c: flip(v, 5, FLAG_SIGNED)),
    Case("flip_header_time", "tamper", "a bit of created_at flipped", make=lambda v, c: flip(v, 6, 0x01)),
    Case(
        "flip_payload",
        "tamper",
        "a bit in the middle of the payload",
        make=lambda v, c: flip(v, _mid_body(parse(v))),
    ),
    Case(
        "flip_key_id",
        "tamper",
        "a letter of the key id flipped",
        make=lambda v, c: flip(v, parse(v).body_end, 0x01),
    ),
    Case(
        "flip_mac", "tamper", "the last byte of the HMAC flipped", make=lambda v, c: flip(v, len(v) - 1, 0x01)
    ),
    # -- (b) truncated -----------------------------------------------------------
    Case("trunc_empty", "truncate", "empty value", make=lambda v, c: b""),
    Case("trunc_magic", "truncate", "2 bytes (inside the magic)", make=lambda v, c: v[:2]),
    Case("trunc_header", "truncate", "cut inside the header", make=_trunc(lambda v, p: p.body_start - 1)),
    Case(
        "trunc_body", "truncate", "cut in the middle of the payload", make=_trunc(lambda v, p: _mid_body(p))
    ),
    Case(
        "trunc_key_id",
        "truncate",
        "cut after the payload (trailer lost)",
        make=_trunc(lambda v, p: p.body_end),
    ),
    Case("trunc_mac", "truncate", "HMAC cut in half", make=_trunc(lambda v, p: len(v) - MAC_LEN // 2)),
    Case("trunc_last", "truncate", "last byte missing", make=_trunc(lambda v, p: len(v) - 1)),
    # -- (c) replayed under another key ----------------------------------------------
    Case(
        "replay_other_key",
        "replay",
        "the valid signed bytes of key A stored under key B",
        make=lambda v, c: c.other_valid,
    ),
    # -- (d) oversized / lying about its size ------------------------------------------
    Case(
        "over_limit",
        "oversized",
        f"validly signed, payload 80 KiB > the reader's max_payload_len ({READER_MAX_PAYLOAD // 1024} KiB)",
        make=lambda v, c: envelope(os.urandom(80 * 1024), codec="raw", key=c.key, keyring=c.keyring),
    ),
    Case(
        "claims_huge",
        "oversized",
        "validly signed, header claims a 1 TiB payload, 16 bytes present",
        make=lambda v, c: envelope(b"x" * 16, codec="raw", key=c.key, keyring=c.keyring, payload_len=1 << 40),
    ),
    Case(
        "claims_more",
        "oversized",
        "validly signed, header claims 100 bytes more than present",
        make=lambda v, c: envelope(b"x" * 16, codec="raw", key=c.key, keyring=c.keyring, payload_len=116),
    ),
    Case(
        "lz4_bomb",
        "oversized",
        "validly signed, compressed flag, claims 60 KiB from a 16-byte body",
        make=lambda v, c: envelope(
            b"x" * 16, codec="raw", key=c.key, keyring=c.keyring, flags=FLAG_COMPRESSED, payload_len=60 * 1024
        ),
    ),
    Case(
        "lz4_garbage",
        "oversized",
        "validly signed, compressed flag, body is not LZ4",
        make=lambda v, c: envelope(
            b"\xff" * 64, codec="raw", key=c.key, keyring=c.keyring, flags=FLAG_COMPRESSED, payload_len=200
        ),
    ),
    # -- (e) a pickle that runs code when unpickled --------------------------------------
    Case(
        "pickle_unsigned",
        "pickle",
        "codec pickle, unsigned, payload runs os.mkdir",
        make=lambda v, c: envelope(evil_pickle(c.marker), keyring=None),
    ),
    Case(
        "pickle_forged_mac",
        "pickle",
        "codec pickle, signed flag, our key id, random MAC",
        make=lambda v, c: envelope(evil_pickle(c.marker), key=c.key, mac=os.urandom(MAC_LEN)),
    ),
    Case(
        "pickle_unknown_key",
        "pickle",
        "codec pickle, correctly signed with an attacker's key id and secret",
        make=lambda v, c: envelope(evil_pickle(c.marker), key=c.key, keyring=[(EVIL_KEY_ID, EVIL_SECRET)]),
    ),
    Case(
        "pickle_mac_from_valid",
        "pickle",
        "codec pickle, evil payload with the trailer (key id + MAC) of the valid value",
        make=lambda v, c: (
            envelope(evil_pickle(c.marker), keyring=None, flags=FLAG_SIGNED) + v[parse(v).body_end :]
        ),
    ),
]

BY_NAME = {c.name: c for c in CASES}

#: Corruptions an unsigned envelope must still be refused for: its structure
#: and sizes are checked without a key. (Without signing, a flipped byte
#: inside the payload or the header's times is NOT detected: there is no
#: checksum; turn signing on for any tier others can write.)
UNSIGNED_CASES = [
    BY_NAME[n]
    for n in (
        "flip_magic",
        "flip_version",
        "trunc_empty",
        "trunc_magic",
        "trunc_header",
        "trunc_body",
        "trunc_last",
        "over_limit",
        "claims_huge",
        "claims_more",
        "lz4_bomb",
        "lz4_garbage",
    )
]


# -- chunked values (memcached with a small item limit) -------------------------------

CHUNK_CASES = [
    Case("chunk_flip", "chunk", "a bit flipped in chunk #1", counter="chunk_misses"),
    Case("chunk_truncate", "chunk", "chunk #1 cut by 10 bytes", counter="chunk_misses"),
    Case("chunk_missing", "chunk", "chunk #2 deleted", counter="chunk_misses"),
    Case("chunk_swapped", "chunk", "chunk #0 replaced by chunk #0 of another value", counter="chunk_misses"),
    Case("chunk_is_envelope", "chunk", "chunk #0 replaced by a whole valid envelope", counter="chunk_misses"),
    Case("manifest_flip", "chunk", "a bit flipped in the manifest's digest"),
    Case("manifest_truncate", "chunk", "manifest cut in half"),
    Case("manifest_replay", "chunk", "the manifest of key A (chunks present) stored under key B"),
    Case("manifest_huge_count", "chunk", "validly signed manifest claiming 10^6 chunks of 1 KiB"),
]
