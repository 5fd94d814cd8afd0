"""One memcached server of four killed (kill -9) or frozen (SIGSTOP): the
share of keys served from memcached in the 10 s after the fault, stratacache
(dead keys "move" and "stay") side by side with pymemcache's HashClient (what
Django's PyMemcacheCache uses). Run: bash scripts/bench-fleet.sh

Scenario (issue 16): 2,000 keys written, the fault, then batches of 50 keys
read for 10 s; a missing key is loaded and written back (get_many_or_load
for stratacache, get_many + set_many for HashClient).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fleet_support import Fleet
from pymemcache.client.hash import HashClient

from stratacache import TieredCache
from stratacache.tiers import MemcachedTier

N_KEYS = 2000
BATCH = 50
SECONDS = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0


def run_stratacache(fleet: Fleet, dead_keys: str, fault: str, tag: str) -> tuple:
    tier = MemcachedTier(fleet.memcached, timeout=0.5, dead_keys=dead_keys)
    cache = TieredCache([tier], local=None, codec="json", signing_keys="bench secret")
    keys = [f"bf:{tag}:{i}" for i in range(N_KEYS)]
    cache.get_many_or_load(keys, lambda ks: {k: k for k in ks})
    return _measure(fleet, fault, keys, lambda batch, load: cache.get_many_or_load(batch, load))


def run_hashclient(fleet: Fleet, fault: str, tag: str) -> tuple:
    servers = [(h, int(p)) for h, p in (s.rsplit(":", 1) for s in fleet.memcached)]
    client = HashClient(
        servers, connect_timeout=0.5, timeout=0.5, ignore_exc=True, retry_attempts=2, retry_timeout=1
    )
    keys = [f"bf:{tag}:{i}" for i in range(N_KEYS)]
    client.set_many({k: k.encode() for k in keys})

    def read(batch: list, load) -> dict:
        got = client.get_many(batch)
        missing = [k for k in batch if k not in got]
        if missing:
            loaded = load(missing)
            client.set_many({k: v.encode() for k, v in loaded.items()})
            got.update(loaded)
        return got

    return _measure(fleet, fault, keys, read)


def _measure(fleet: Fleet, fault: str, keys: list, read) -> tuple:
    victim = "memcached2"
    (fleet.kill if fault == "kill" else fleet.freeze)(victim)
    asked = loaded = batches = 0
    first_pass = None  # share served over the first read of every key after the fault
    slowest = 0.0
    end = time.monotonic() + SECONDS
    try:
        while time.monotonic() < end:
            for i in range(0, N_KEYS, BATCH):
                batch = keys[i : i + BATCH]
                misses = []

                def load(missing: list, misses: list = misses) -> dict:
                    misses.extend(missing)
                    return {k: k for k in missing}

                t = time.perf_counter()
                read(batch, load)
                slowest = max(slowest, time.perf_counter() - t)
                asked += len(batch)
                loaded += len(misses)
                batches += 1
                if first_pass is None and asked >= N_KEYS:
                    first_pass = 1 - loaded / asked
                if time.monotonic() >= end:
                    break
    finally:
        if fault == "freeze":
            fleet.thaw(victim)
        else:
            fleet.restart(victim)
    return 1 - loaded / asked, first_pass, batches, slowest


def main() -> None:
    fleet = Fleet("fleet")
    try:
        print(f"{N_KEYS} keys on 4 memcached servers, batches of {BATCH}, {SECONDS:.0f} s after the fault")
        print(f"{'fault':8} {'client':34} {'served':>7} {'1st pass':>9} {'batches':>8} {'slowest batch':>14}")
        rows = {}
        for fault in ("kill", "freeze"):
            for name, run in (
                ("stratacache dead_keys=move", lambda f, t: run_stratacache(fleet, "move", f, t)),
                ("stratacache dead_keys=stay", lambda f, t: run_stratacache(fleet, "stay", f, t)),
                ("pymemcache HashClient", lambda f, t: run_hashclient(fleet, f, t)),
            ):
                served, first, batches, slowest = run(fault, f"{fault}-{name.split()[-1]}-{time.time_ns()}")
                rows[(fault, name)] = (served, first)
                print(
                    f"{fault:8} {name:34} {served:7.2f} {first:9.2f} {batches:8d} {slowest * 1000:11.0f} ms"
                )
                time.sleep(0.5)
        for fault in ("kill", "freeze"):
            peer = rows[(fault, "pymemcache HashClient")]
            for mode in ("move", "stay"):
                ours = rows[(fault, f"stratacache dead_keys={mode}")]
                print(
                    f"{fault}: stratacache {mode} served {ours[0]:.2f} vs HashClient {peer[0]:.2f} "
                    f"({ours[0] / peer[0]:.2f}x); first pass {ours[1]:.2f} vs {peer[1]:.2f} "
                    f"({ours[1] / peer[1]:.2f}x)"
                )
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
