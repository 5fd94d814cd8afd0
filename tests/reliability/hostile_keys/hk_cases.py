"""Hostile key parts shared by the Python and JS hostile-key tests (issue 7).

Cases are JSON-friendly so that the JS test can ask this module for them and
have Python build the same keys:

* ``python hk_cases.py dump``: every case as JSON on stdout;
* ``python hk_cases.py build``: reads cases (JSON) on stdin and writes, for
  each, the key Python's ``stratacache.Key`` builds, or the exception's class
  name (lone surrogates: ``ValueError``).

A part is ``{"str": s}``, ``{"int": "decimal"}``, ``{"bytes_hex": "..."}``, or
``{"str_repeat": {"unit": u, "count": n, "suffix": s}}`` for the 1 MB parts
(so the JSON stays small).
"""

from __future__ import annotations

import json
import random
import sys

# The format's separator, tags and escape (alone and as literal escapes),
# confusables (Cyrillic, Greek, fullwidth, ligature, mathematical), NFC and
# NFD forms, combining marks, NUL/controls/whitespace, zero-width and bidi
# characters, the replacement character and an emoji.
PIECES = [
    "|", "#", "!", "%", "%7C", "%25", "%23", "%21", "%#", "|#1", "|!", "||", "#5", "!x",
    "a", "A", "o", "fi", "\u0430", "\u03bf", "\uff41", "\uff21", "\ufb01", "\U0001d41a",
    "é", "e\u0301", "\u0301", "\u00c5", "A\u030a", "\u212b",
    "\0", "\x01", "\x1b", "\t", "\n", "\r", " ", "\x7f", "\x85", "\xa0", "\u2028",
    "\u200b", "\u200d", "\ufeff", "\u202e", "\ufffd", "😀",
    "0", "5", "-", "v1", "C3", "A9",
]  # fmt: skip

BYTE_PIECES = [
    b"|", b"#", b"!", b"%", b"\0", b"\xff", b"\xfe", b"\x80",
    b"\xed\xa0\x80",  # WTF-8 of a lone surrogate: not UTF-8
    b"\xc3\xa9", b"e\xcc\x81", b"a", b"5", b" ", b"%7C",
]  # fmt: skip

INTS = [0, 1, -1, 5, -5, 2**53 - 1, 2**53, 2**63 - 1, -(2**63), 2**127 - 1, -(2**127)]

MB = 1 << 20


def s(text: str) -> dict:
    return {"str": text}


def b(data: bytes) -> dict:
    return {"bytes_hex": data.hex()}


def i(n: int) -> dict:
    return {"int": str(n)}


def rep(unit: str, count: int, suffix: str = "") -> dict:
    return {"str_repeat": {"unit": unit, "count": count, "suffix": suffix}}


# Classic confusions: each list differs from every other.
TABLE = [
    [],
    [s("")],
    [s(""), s("")],
    [b(b"")],
    [s("a|b")],
    [s("a"), s("b")],
    [s("a%7Cb")],
    [s("a#1")],
    [s("a"), i(1)],
    [s("a!1")],
    [s("a"), b(b"1")],
    [s("#1")],
    [i(1)],
    [s("1")],
    [b(b"1")],
    [s("%")],
    [s("%25")],
    [s("%2525")],
    [s("admin")],
    [s("\u0430dmin")],  # Cyrillic a
    [s("\uff41dmin")],  # fullwidth a
    [s("admin\0")],
    [s("admin"), s("\0")],
    [s("café")],  # NFC
    [s("cafe\u0301")],  # NFD
    [b("café".encode())],
    [s("\u00c5")],
    [s("A\u030a")],
    [s("\u212b")],
    [s("a b")],
    [s("a\xa0b")],
    [s("a\tb")],
    [s("ab")],
    [s("a\u200bb")],
    [s("a\ufeffb")],
    [s("\u202eba")],
    [b(b"\xed\xa0\x80")],
    [s("\ufffd")],
    [i(-1)],
    [s("-1")],
    [i(0)],
    [b(b"\x00")],
    [s("\0")],
    [i(2**127 - 1)],
    [i(-(2**127))],
]

MEGABYTE = [
    [rep("a", MB)],
    [rep("a", MB - 1, "b")],
    [rep("a", MB - 1, "\u0430")],  # Cyrillic a at the very end
    [rep("a", MB, "é")],
    [rep("a", MB, "e\u0301")],
    [rep("a", MB, "\0")],
    [rep("a", MB // 2), rep("a", MB // 2)],
    [rep("\0", MB)],
    [rep("|", MB)],
]

# Lone surrogates: Python refuses them (ValueError), never a key.
LONE_SURROGATES = ["\ud800", "\udc00", "a\ud800b", "\udfff", "\udcff"]


def random_cases(seed: int, n: int) -> list[list[dict]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randrange(0, 5)):
            kind = rng.randrange(10)
            if kind < 6:
                parts.append(s("".join(rng.choice(PIECES) for _ in range(rng.randrange(0, 8)))))
            elif kind < 8:
                parts.append(b(b"".join(rng.choice(BYTE_PIECES) for _ in range(rng.randrange(0, 6)))))
            else:
                parts.append(i(rng.choice(INTS)))
        out.append(parts)
    return out


def all_cases() -> list[dict]:
    """Every case: namespace, version, max_len and parts, all distinct."""
    lists = TABLE + random_cases(7, 800) + MEGABYTE
    seen, cases = set(), []
    for parts in lists:
        marker = json.dumps(parts, sort_keys=True)
        if marker in seen:
            continue
        seen.add(marker)
        for max_len in (64, 200, 250):
            cases.append({"namespace": "hk", "version": 1, "max_len": max_len, "parts": parts})
    return cases


def to_part(p: dict) -> str | int | bytes:
    if "str" in p:
        return p["str"]
    if "int" in p:
        return int(p["int"])
    if "bytes_hex" in p:
        return bytes.fromhex(p["bytes_hex"])
    r = p["str_repeat"]
    return r["unit"] * r["count"] + r["suffix"]


def build(case: dict) -> str:
    import stratacache

    key = stratacache.Key(case["namespace"], case["version"], max_len=case["max_len"])
    return str(key(*(to_part(p) for p in case["parts"])))


def build_or_error(case: dict) -> dict:
    try:
        return {"key": build(case)}
    except Exception as e:  # the class name is what the JS side compares
        return {"error": type(e).__name__}


def main() -> None:
    if sys.argv[1:] == ["dump"]:
        json.dump({"cases": all_cases(), "lone_surrogates": LONE_SURROGATES}, sys.stdout)
    elif sys.argv[1:] == ["build"]:
        cases = json.load(sys.stdin)
        json.dump([build_or_error(c) for c in cases], sys.stdout)
    else:
        sys.exit("usage: hk_cases.py dump|build")


if __name__ == "__main__":
    main()
