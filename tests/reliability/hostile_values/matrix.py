"""Prints the hostile-values matrix (corruption x tier -> outcome) from the
JUnit XML of the pytest and node runs (see run_matrix.sh), as a Markdown
table, and writes it with a JSON copy to target/reliability/hostile_values/.

Usage: python matrix.py PYTEST.xml NODE.xml [NODE.xml...]
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from hv_support import CASES, CHUNK_CASES

OUT = Path(__file__).resolve().parents[3] / "target" / "reliability" / "hostile_values"

TIERS = [
    ("memcached", "Py MemcachedTier"),
    ("memcached_chunked", "Py MemcachedTier, chunked"),
    ("redis", "Py RedisTier"),
    ("s3", "Py StorageTier (S3)"),
    ("django_pymemcache", "Py DjangoCacheTier (PyMemcacheCache)"),
    ("django_redis", "Py DjangoCacheTier (RedisCache)"),
    ("django_locmem", "Py DjangoCacheTier (LocMemCache)"),
    ("memcached_unsigned", "Py MemcachedTier, signing off"),
    ("redis_unsigned", "Py RedisTier, signing off"),
    ("memory", "JS memoryTier"),
    ("memory_chunked", "JS memoryTier, chunked"),
    ("redis_node_adapter", "JS Node Redis adapter"),
    ("redis_node_adapter_chunked", "JS Node Redis adapter, chunked"),
    ("workerd_kv", "JS kvTier (workerd, text)"),
    ("workerd_kv_binary", "JS kvTier (workerd, binary)"),
    ("workerd_cache_api", "JS cacheApiTier (workerd)"),
]

COUNTER = {c.name: c.counter for c in CASES + CHUNK_CASES}
COUNTER["native_pickle"] = "rejected"
COUNTER.update({f"foreign_{k}": "rejected" for k in ("str", "int", "dict")})
JS_COUNTER = {"rejected": "rejected", "chunk_misses": "chunkMisses"}


def cells_from(path: Path) -> dict:
    """(tier, case) -> (status, seconds) from one JUnit file."""
    out = {}
    for tc in ET.parse(path).getroot().iter("testcase"):
        name = tc.get("name", "")
        m = re.search(r"\[([^\]]+)\]", name)
        if not m:
            continue
        ident = m.group(1)
        base = name.split("[")[0]
        if base == "test_hostile_value_memcached_chunked":
            tier, case = "memcached_chunked", ident
        elif base == "test_hostile_value_native_pickle":
            tier, case = ident, "pickle_native"
        elif base == "test_hostile_value_foreign_type":
            tier, kind = ident.split("-", 1)
            case = f"foreign_{kind}"
        elif base == "test_hostile_value_unsigned_cache":
            tier, case = ident.split("-", 1)
            tier += "_unsigned"
        elif "-" in ident:
            tier, case = ident.split("-", 1)
        else:
            continue
        if tc.find("skipped") is not None:
            status = (
                "xfail"
                if "xfail" in (tc.find("skipped").get("type", "") + tc.find("skipped").get("message", ""))
                else "skip"
            )
        elif tc.find("failure") is not None or tc.find("error") is not None:
            status = "FAIL"
        else:
            status = "ok"
        out[(tier, case)] = (status, float(tc.get("time", 0)))
    return out


def main(paths: list) -> int:
    cells: dict = {}
    for p in paths:
        cells.update(cells_from(Path(p)))
    cases = [c.name for c in CASES] + ["pickle_native"] + [c.name for c in CHUNK_CASES]
    cases += ["foreign_str", "foreign_int", "foreign_dict"]
    tiers = [t for t in TIERS if any((t[0], c) in cells for c in cases)]
    header = "| corruption | counter | " + " | ".join(label for _, label in tiers) + " |"
    lines = [header, "|" + "---|" * (len(tiers) + 2)]
    failed = 0
    for case in cases:
        row = [f"`{case}`", f"`{COUNTER.get(case, 'rejected')}`"]
        for tier, _ in tiers:
            status = cells.get((tier, case), ("", 0))[0]
            if status == "FAIL":
                failed += 1
            row.append(
                {"ok": "miss ✓", "xfail": "**unpickled (bug)**", "FAIL": "**FAIL**", "": "—"}.get(
                    status, status
                )
            )
        if any(c not in ("—",) for c in row[2:]):
            lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines)
    total = sum(1 for v in cells.values() if v[0] == "ok")
    xfail = sum(1 for v in cells.values() if v[0] == "xfail")
    summary = f"{total} cells pass, {xfail} known bug(s) (xfail), {failed} failing; {len(cells)} cells in all"

    # tier x group: passed/total per group of corruptions
    group_of = {c.name: c.group for c in CASES + CHUNK_CASES}
    group_of["pickle_native"] = "pickle"
    group_of.update({f"foreign_{k}": "foreign type" for k in ("str", "int", "dict")})
    groups = ["tamper", "truncate", "replay", "oversized", "pickle", "chunk", "foreign type"]
    g_lines = [
        "| tier | " + " | ".join(groups) + " | seconds |",
        "|---|" + "---|" * (len(groups) + 1),
    ]
    for tier, label in tiers:
        row = [label]
        for g in groups:
            mine = [cells[(tier, c)] for c in cases if group_of.get(c) == g and (tier, c) in cells]
            if not mine:
                row.append("—")
                continue
            ok = sum(1 for s, _ in mine if s == "ok")
            bad = [s for s, _ in mine if s != "ok"]
            row.append(
                f"{ok}/{len(mine)}"
                + (f" (**{len(bad)} {'bug' if 'xfail' in bad else 'FAIL'}**)" if bad else "")
            )
        row.append(f"{sum(sec for (t, _), (_, sec) in cells.items() if t == tier):.1f}")
        g_lines.append("| " + " | ".join(row) + " |")
    by_group = "\n".join(g_lines)
    print(by_group)
    print()
    print(summary)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "matrix.md").write_text(by_group + "\n\n" + table + "\n\n" + summary + "\n")
    (OUT / "matrix.json").write_text(
        json.dumps(
            {f"{t}|{c}": {"status": s, "seconds": sec} for (t, c), (s, sec) in sorted(cells.items())},
            indent=1,
        )
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
