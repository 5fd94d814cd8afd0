"""Fault injection against the Django example, short runs (issue 7).

The course-outline site (gunicorn, stratacache mode) under 8 concurrent
clients; in the middle of each run memcached is killed or frozen, Redis
frozen, or S3 answers 503s, then it comes back. Each test asserts:

- no request failed (no 5xx, no connection error): a failing tier is never
  the reason a page fails;
- pages were served during the fault, and the loader served what the tier
  could not;
- the failing tier was not hammered: the operations stratacache sent it
  during the fault, and the requests the proxy in front of it saw, are
  within the cool-down rule's bound (per cache: 3 failures, the operations
  already in flight, one probe per 5 s cool-down), and it was skipped;
- after the restart/thaw the tier serves hits again and the hit ratio is
  back to 95% of its baseline.

The servers are the suite's own (``scripts/test-reliability.sh`` exports
their variables); killed or frozen ones are started or thawed again by the
fixtures' finalizers. The long runs are ``bash scripts/faults.sh``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import faultrig
import pytest

SERVICES = ("memcached1", "memcached2", "redis", "s3")
# Seconds: warm-up, baseline, fault (longer than one 5 s cool-down, so at
# least one probe is sent), after the restore.
TIMES = {"warmup": 1.0, "before": 2.0, "fault": 6.0, "after": 6.0}


def _servers(*args: str) -> None:
    subprocess.run(
        ["bash", str(faultrig.REPO / "scripts" / "servers.sh"), *args],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=60,
    )


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory):
    missing = [
        v
        for v in ("STRATACACHE_MEMCACHED", "STRATACACHE_REDIS_URL", "STRATACACHE_S3_ENDPOINT")
        if not os.environ.get(v)
    ]
    assert not missing, (
        f'run through scripts/test-reliability.sh, or eval "$(bash scripts/servers.sh env)": {missing}'
    )
    out: Path = tmp_path_factory.mktemp("faults")
    r = faultrig.Rig(out, courses=50).start()
    yield r
    r.stop()


@pytest.fixture
def restore_servers():
    """Whatever a test did to the servers, they run (thawed) after it."""
    yield
    _servers("thaw", *SERVICES)
    _servers("start", *SERVICES)


def _run(rig: faultrig.Rig, name: str, **times: float) -> dict:
    result = faultrig.run(rig, faultrig.SCENARIOS[name], **{**TIMES, **times})
    c = result["cooldown"]
    print(
        f"\n{name}: {result['served']} served, {result['errors']} errors, {result['loader_calls']} loader calls; "
        f"hit ratio {result['baseline_hit_ratio']} -> {result['fault_hit_ratio']}, recovered in "
        f"{result['recovery_s']} s (tier: {result['tier_recovery_s']} s); {c['ops_sent']} ops to the tier "
        f"({c['ops_per_cache']}), {c['errors']} errors, {c['skipped']} skipped, bound {c['bound_per_cache']} "
        f"per cache; proxy {c['proxy']}"
    )
    return result


def _assert_no_client_errors(r: dict) -> None:
    assert r["errors"] == 0, f"{r['errors']} requests failed, e.g. {r['error_examples']}"
    assert r["server_log_tracebacks"] == 0, "the server logged a traceback"
    assert r["phases"]["fault"]["served"] > 0, "no page was served during the fault"


def _assert_cooldown(r: dict, *, proxy_factor: int = 1) -> None:
    """The failing tier failed, tripped, was skipped, and received no more
    than the cool-down rule allows, by stratacache's count and by the proxy's."""
    c = r["cooldown"]
    assert c["errors"] >= faultrig.COOLDOWN_FAILURES, f"the tier never failed enough to trip: {c}"
    assert c["skipped"] > 0, f"the tier was never skipped (cooling down): {c}"
    for cache, ops in c["ops_per_cache"].items():
        assert ops <= c["bound_per_cache"], f"{cache}: {ops} operations reached the failing tier: {c}"
    assert c["proxy_requests"] <= c["bound"] * proxy_factor, f"the proxy saw too many requests: {c}"


def _assert_recovered(r: dict) -> None:
    after = [p for p in r["series"] if p["t"] > r["t_restore"]]
    assert sum(p.get("tier_hits", 0) for p in after) > 0, "the tier served no hit after the restore"
    assert r["recovery_s"] is not None, (
        f"the hit ratio did not come back to 95% of {r['baseline_hit_ratio']:.3f}: "
        f"{[p['hit_ratio'] for p in after]}"
    )


def test_memcached_killed_then_restarted(rig: faultrig.Rig, restore_servers: None) -> None:
    # A restarted memcached is empty: the loader refills it, which takes a
    # few seconds (4-6 s at load average 10-20).
    r = _run(rig, "mc-kill", after=10.0)
    _assert_no_client_errors(r)
    assert r["loader_calls_fault"] > 0, "the loader served nothing while memcached was down"
    # The proxy sees each call twice while the server is dead: the client
    # sends it once more on a new connection when a pooled one dies before
    # any reply byte (stratacache's memcached client, by design).
    _assert_cooldown(r, proxy_factor=2)
    _assert_recovered(r)


def test_memcached_frozen_then_thawed(rig: faultrig.Rig, restore_servers: None) -> None:
    r = _run(rig, "mc-freeze")
    _assert_no_client_errors(r)
    _assert_cooldown(r)
    _assert_recovered(r)


def test_redis_frozen_then_thawed(rig: faultrig.Rig, restore_servers: None) -> None:
    r = _run(rig, "redis-freeze")
    _assert_no_client_errors(r)
    _assert_cooldown(r)
    _assert_recovered(r)


def test_s3_answering_503(rig: faultrig.Rig, restore_servers: None) -> None:
    r = _run(rig, "s3-503")
    _assert_no_client_errors(r)
    c = r["cooldown"]
    assert c["proxy"].get("answered_503", 0) > 0, f"no request reached S3 during the fault: {c}"
    # botocore retries a 503 up to 4 times (5 requests per stratacache operation).
    _assert_cooldown(r, proxy_factor=5)
