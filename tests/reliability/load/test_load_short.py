"""A short version of the load test (``scripts/loadtest.sh`` is the long
one): locust against the Django example over real memcached (two
instances) and S3, 12 s per configuration at low concurrency, edx-django-utils
then stratacache. Asserts counts, never times: no request failed, both
configurations really used memcached and S3, and stratacache made fewer
memcached round trips per request than the edx configuration (by its own
count and by memcached's).

Uses the servers named by ``STRATACACHE_MEMCACHED`` / ``STRATACACHE_S3_ENDPOINT``
(``scripts/test-reliability.sh`` exports them), or starts its own.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import loadrun
import pytest

REPO = Path(__file__).resolve().parents[3]
SECONDS = 12
USERS = 4
# A run lasts SECONDS and at least MIN_REQUESTS requests (at most
# MAX_SECONDS): on a crowded machine the cold start alone can take seconds.
MIN_REQUESTS = 150
MAX_SECONDS = 60


@pytest.fixture(scope="module")
def servers_env():
    env = dict(os.environ)
    if env.get("STRATACACHE_MEMCACHED") and env.get("STRATACACHE_S3_ENDPOINT"):
        yield env
        return
    script = (
        "set -e; source scripts/lib.sh; choose_port_base 22100; "
        "bash scripts/servers.sh start memcached s3 >&2; bash scripts/servers.sh env"
    )
    out = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, f"could not start the servers:\n{out.stderr}"
    for line in out.stdout.splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value
    try:
        yield env
    finally:
        subprocess.run(
            ["bash", "scripts/servers.sh", "stop", "memcached", "s3"], cwd=REPO, env=env, check=False
        )


def test_short_load_run_stratacache_vs_edx(servers_env: dict, tmp_path: Path) -> None:
    result = loadrun.campaign(
        seconds=SECONDS,
        users=USERS,
        rounds=1,
        out=tmp_path,
        env=servers_env,
        progress_s=0,
        min_requests=MIN_REQUESTS,
        max_seconds=MAX_SECONDS,
    )
    print(loadrun.table(result["rows"], result["combined"]))
    rows = {r["mode"]: r for r in result["rows"]}
    assert set(rows) == {"edx", "stratacache"}
    for mode, r in rows.items():
        assert r["errors"] == 0, (
            f"{mode}: {r['errors']} of {r['requests']} requests failed\n{r.get('server_log_tail')}"
        )
        # A real run: requests of every kind, the modulestore loaded, both
        # memcached and S3 used (the 1.3 MiB outline goes to S3 in both).
        assert r["requests"] >= MIN_REQUESTS, f"{mode}: only {r['requests']} requests in {MAX_SECONDS} s"
        assert {"outline", "outline-large", "enrollments"} <= set(r["by_kind"]), (mode, r["by_kind"])
        assert r["loader_calls"] > 0, mode
        assert r["cache_round_trips"] > 0, mode
        assert r["storage_requests"] > 0, mode
        assert r["memcached_server"]["cmd_get"] > 0 and r["memcached_server"]["cmd_set"] > 0, (mode, r)
    tc, edx = rows["stratacache"], rows["edx"]
    assert tc["memcached_round_trips_per_request"] < edx["memcached_round_trips_per_request"], (
        f"memcached round trips per request: stratacache {tc['memcached_round_trips_per_request']:.2f}, "
        f"edx {edx['memcached_round_trips_per_request']:.2f}"
    )
    # The same from memcached's side: keys read, written or deleted per request.
    assert tc["memcached_keys_per_request"] < edx["memcached_keys_per_request"], (
        tc["memcached_keys_per_request"],
        edx["memcached_keys_per_request"],
    )
