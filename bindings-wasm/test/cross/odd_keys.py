"""The Python half of cross-keys.test.mjs: odd plain string keys through a
real memcached, with the Python package.

keys OUT:             writes the odd keys (JSON list) to OUT.
write SERVER SECRET:  stores "py:<i>" under key i of the list read from stdin.
read SERVER SECRET:   reads every key of the list on stdin and prints
                      {"values": [value or null, ...]} as JSON.
"""

import json
import sys

from stratacache import Key, TieredCache, signing_keys_from_secret
from stratacache.tiers import MemcachedTier


def odd_keys() -> list:
    """Over 200 distinct plain keys: separators, spaces, Unicode, control
    characters, the escape prefix, near-empty, 10 KB, built keys as str."""
    keys = ["", " ", "  ", "\t", "\n", "\x00", "\x7f", "%", "%~", "%~%", "%25", "%7C", "~", "!", "#", "|"]
    for sep in ["|", "#", "%", "!", " ", ":", "~", "%~", "\u00e9", "\U0001f600", "\x00", "\\"]:
        for shape in ["a{s}b", "{s}a", "a{s}", "{s}{s}", "ns{s}v1{s}a", "{s}", "x {s} y", "{s}5"]:
            keys.append(shape.format(s=sep))
    for base in [
        "caf\u00e9",
        "cafe\u0301",
        "\u65e5\u672c\u8a9e",
        "\u0420\u043e\u0441\u0441\u0438\u044f",
        "\u200b",
    ]:
        keys += [base, base + " ", "|" + base, base * 40]
    for n in (199, 200, 201, 250, 251, 10 * 1024):
        keys += ["k" * n, "\u00e9" * n, "%" * n]
    keys += [str(Key("ns", 1)("a b|c")), str(Key("ns", 1)(5)), str(Key("ns", 1)(b"\x00")), "ns|v1|a%20b%7Cc"]
    keys += [f"user:{i}|{chr(0x20 + i)}" for i in range(60)]
    return list(dict.fromkeys(keys))


def cache(server: str, secret: str) -> TieredCache:
    return TieredCache(
        [MemcachedTier([server])], local=None, codec="json", signing_keys=signing_keys_from_secret(secret)
    )


def main() -> None:
    command = sys.argv[1]
    if command == "keys":
        with open(sys.argv[2], "w", encoding="utf-8") as out:
            json.dump(odd_keys(), out)
        return
    server, secret = sys.argv[2], sys.argv[3]
    keys = json.load(sys.stdin)
    c = cache(server, secret)
    if command == "write":
        for i, key in enumerate(keys):
            c.set(key, f"py:{i}", ttl=300)
    elif command == "read":
        got = c.get_many(keys)
        print(json.dumps({"values": [got.get(k) for k in keys]}))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
