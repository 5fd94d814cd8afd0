"""A short run of the demo (scripts/demo.sh runs the long one): the table is
printed, the results and plots are written, and stratacache made fewer loader
calls and fewer remote round trips than both other modes.

It runs the embedded default (no server), as the demo command does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
REQUESTS = int(os.environ.get("DEMO_TEST_REQUESTS", "240"))


def test_short_demo(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRATACACHE_", "DEMO_", "DJANGO_"))}
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, str(HERE / "loadtest.py"), "--requests", str(REQUESTS), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, f"stdout:\n{run.stdout}\nstderr:\n{run.stderr}"
    stdout = run.stdout
    for label in ("no caching", "edx-django-utils", "stratacache"):
        assert f"\n{label} " in stdout, stdout
    for column in ("req/s", "p50 ms", "p95 ms", "p99 ms", "loader calls", "round trips/req"):
        assert column in stdout, stdout
    assert "memcached stand-in" in stdout, "the embedded default"
    for name in ("results.json", "table.txt", "latency.png", "latency.svg"):
        assert (out / name).stat().st_size > 0, name
    rows = {r["mode"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert all(r["requests"] == REQUESTS and r["errors"] == 0 for r in rows.values()), rows
    ours, edx, none = rows["stratacache"], rows["edx"], rows["none"]
    assert ours["loader_calls"] < edx["loader_calls"] < none["loader_calls"], {
        m: r["loader_calls"] for m, r in rows.items()
    }
    assert ours["round_trips_per_request"] < edx["round_trips_per_request"], rows
    assert ours["round_trips_per_request"] < none["round_trips_per_request"], rows
    # Each outline was built once in stratacache mode, launch burst included.
    assert ours["outline_loads"] <= edx["outline_loads"]
