"""The Python half of the cross-runtime test (driven by ../cross.test.mjs).

write OUT: stores sample values with the Python package (JSON codec, signed)
           in a dict tier, and writes {keys, values, items} to OUT.
read IN:   reads, with the Python package, the items the JS package wrote to
           IN, and prints {key: value} as JSON.
"""
import json
import random
import sys

from stratacache import Key, TieredCache
from stratacache.keys import BuiltKey
from stratacache.tiers import Tier

SECRET = b"cross-runtime secret, 16+ bytes!"


class DictTier(Tier):
    kind = "memcached"
    name = "dict"

    def __init__(self, items=None, item_limit=64 * 1024):
        self.items = dict(items or {})
        self.item_limit = item_limit

    def get_many(self, keys):
        return [self.items.get(k) for k in keys]

    def set_many(self, entries):
        for key, value, _ttl in entries:
            self.items[key] = bytes(value)

    def add_many(self, items):
        taken = []
        for key, value, _ttl in items:
            taken.append(key not in self.items)
            self.items.setdefault(key, bytes(value))
        return taken

    def delete_many(self, keys):
        for key in keys:
            self.items.pop(key, None)


def cache(tier):
    return TieredCache([tier], local=None, codec="json", signing_keys=[("2025a", SECRET)])


def samples():
    rng = random.Random(7)  # incompressible enough to be chunked at 64 KiB
    outline = Key("course_outline", 3)
    return {
        outline("course-v1:edX+DemoX+Demo_Course", 42): {"title": "Démo ☕", "sections": [1, 2, 3], "ok": True, "none": None},
        outline("course-v1:edX+DemoX+Demo_Course", -7): [1, "two", 3.5, None, {"nested": {"deep": []}}],
        Key("grades", 7)("a b|c", b"\x00\xff"): "a string with \"quotes\" and \\ and \n",
        Key("flags", 1)(): 12345678901234,
        Key("big", 1)("doc"): {"text": "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(200_000))},
    }


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "write":
        tier = DictTier()
        c = cache(tier)
        values = samples()
        for key, value in values.items():
            c.set_all_tiers(key, value, ttl=3600)
        out = {
            "keys": list(values),
            "values": list(values.values()),
            "items": {k: v.hex() for k, v in tier.items.items()},
        }
        with open(path, "w") as f:
            json.dump(out, f)
    elif mode == "read":
        with open(path) as f:
            data = json.load(f)
        tier = DictTier({k: bytes.fromhex(v) for k, v in data["items"].items()})
        c = cache(tier)
        # Keys built by the JS Key class: used as they are (plain str keys
        # would go through safe_key, as in the JS package's safeKey()).
        print(json.dumps({key: c.get(BuiltKey(key), "<<MISS>>") for key in data["keys"]}))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
