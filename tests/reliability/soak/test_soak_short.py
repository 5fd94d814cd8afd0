"""Soak and memory (issue 7), the fast version of scripts/soak.sh.

A few hundred thousand operations of the shared LocalCache op stream (TTL
churn, fresh keys never read again, a hot set, 16 B-16 KiB values, 50,000
entries / 32 MiB bounds) in the Rust and Python hosts, each in its own
process so RSS is clean: RSS above the post-import baseline stays within the
32 MiB weight bound plus a fixed margin, and does not grow after warm-up. A
plain dict on the same stream (no bound) fails the same check, so the check
can fail. Then the RequestCache across threads and asyncio tasks: no request
sees another's values, nothing outlives its request, RSS does not grow; and
the detectors are shown to catch a leak and a shared cache. (The JS host is
in soak_short.test.mjs.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
MIB = 2**20
OPS = 300_000
# RSS allowed above the baseline beyond the weight bound: per-entry overhead
# (keys, nodes, object headers for at most ~14k entries here) and allocator
# slack. Generous on purpose: a leak of the values grows without bound.
MARGIN = 32 * MIB
# RSS growth allowed after warm-up (allocator noise).
GROWTH = 12 * MIB


def run_json(cmd: list[str], cwd: Path = HERE, timeout: float = 240) -> dict:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def python_soak(contender: str, ops: int = OPS) -> dict:
    return run_json([sys.executable, "soak_local.py", contender, "--ops", str(ops), "--sample", "5000"])


def rust_example() -> str:
    """Builds core/examples/soak_local.rs (debug) and returns its path."""
    done = subprocess.run(
        ["cargo", "build", "-q", "-p", "stratacache", "--example", "soak_local", "--message-format=json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for line in done.stdout.splitlines():
        msg = json.loads(line)
        if (
            msg.get("reason") == "compiler-artifact"
            and msg["target"]["name"] == "soak_local"
            and msg.get("executable")
        ):
            return msg["executable"]
    raise AssertionError("cargo built no soak_local executable")


def assert_bounded(d: dict) -> None:
    over = d["peak_rss"] - d["baseline_rss"]
    assert over < d["max_bytes"] + MARGIN, (
        f"{d['host']} {d['contender']}: RSS rose {over / MIB:.1f} MiB above its baseline, more than the"
        f" {d['max_bytes'] / MIB:.0f} MiB weight bound + {MARGIN / MIB:.0f} MiB"
    )
    assert d["peak_growth_after_warm"] < GROWTH, (
        f"{d['host']} {d['contender']}: RSS grew {d['peak_growth_after_warm'] / MIB:.1f} MiB after warm-up"
        f" ({d['warm_ops']:,} ops): samples {[(s[0], round(s[1] / MIB, 1)) for s in d['samples'][::6]]}"
    )
    assert 0 < d["final_entries"] <= d["max_entries"]
    assert d["hits"] > 0 and d["misses"] > 0


@pytest.fixture(scope="module")
def python_stratacache() -> dict:
    return python_soak("stratacache")


def test_python_local_cache_rss_stays_within_the_weight_bound(python_stratacache):
    assert_bounded(python_stratacache)


def test_rust_local_cache_rss_stays_within_the_weight_bound(python_stratacache):
    d = run_json([rust_example(), "--ops", str(OPS), "--sample", "5000"])
    assert_bounded(d)
    assert d["final_weight"] <= d["max_bytes"]
    # The same op stream and the same policy as the Python binding: the same
    # operations, and the same hits give or take what the adaptive policy's
    # admission decides from a per-process hash seed (the table's HashDoS
    # protection). Which entries stay (and so how many, their weights
    # differing) depends on that seed too; the bounds above hold either way.
    assert d["digest"] == python_stratacache["digest"]
    assert d["hits"] + d["misses"] == python_stratacache["hits"] + python_stratacache["misses"]
    assert abs(d["hits"] - python_stratacache["hits"]) <= 0.01 * python_stratacache["hits"]


def test_an_unbounded_dict_fails_the_same_check():
    d = python_soak("dict", ops=150_000)
    assert d["digest"] == python_soak_digest(150_000)
    with pytest.raises(AssertionError, match=r"RSS (rose|grew)"):
        assert_bounded(d)


def python_soak_digest(ops: int) -> int:
    """The op stream digest, computed apart from any cache (as the drivers do)."""
    x, digest = 2463534242, 0
    for _ in range(ops):
        draws = []
        for _ in range(3):
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            draws.append(x)
        r, y, z = draws[0] % 100, draws[1], draws[2]
        span = 16 << ((y >> 12) % 10)
        digest = (digest * 31 + r * 65536 + span + z % span) & 0xFFFFFFFF
    return digest


def test_request_cache_across_threads_and_tasks_isolated_and_flat():
    d = run_json(
        [
            sys.executable,
            "soak_request.py",
            "--requests",
            "30000",
            "--threads",
            "8",
            "--tasks",
            "100",
            "--sample",
            "1000",
        ]
    )
    assert d["requests"] == 30000
    assert d["sightings"] == 0, d["sighting_examples"]
    assert d["survivors"] == 0, d["survivor_examples"]
    assert d["peak_growth_after_warm"] < 8 * MIB, d["samples"]


def test_request_soak_detects_a_value_that_outlives_its_request():
    import soak_request

    kept = []

    class Leaky(soak_request.Soak):
        def begin(self, rid):
            ref = super().begin(rid)
            kept.append(ref())  # a reference that outlives the request
            return ref

    soak = Leaky(requests=300, sample=100, progress=False)
    soak.thread_worker()
    assert soak.done == 300 and soak.sightings == []
    assert len(soak.survivors) == 100  # capped at 100


def test_request_soak_detects_a_cache_shared_between_requests():
    import asyncio

    import soak_request

    shared = {}

    class SharedCache:
        namespace = "shared"

        def set(self, key, value):
            shared[key] = value

        def get(self, key, default=soak_request.MISSING):
            return shared.get(key, default)

    soak = soak_request.Soak(requests=200, sample=100, progress=False)
    old = soak_request.CACHE_A, soak_request.CACHE_B
    soak_request.CACHE_A = soak_request.CACHE_B = SharedCache()
    try:

        async def main():
            await asyncio.gather(*(soak.task_worker() for _ in range(20)))

        asyncio.run(main())
    finally:
        soak_request.CACHE_A, soak_request.CACHE_B = old
    assert soak.done == 200
    assert soak.sightings and soak.survivors
