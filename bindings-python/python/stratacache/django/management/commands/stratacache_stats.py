"""``manage.py stratacache_stats``: a table per tier of every configured cache.

``--json`` prints ``{cache name: stats}`` where each ``stats`` has the shape
of ``TieredCache.stats()`` (``tiers``, ``reads``, ``local``, ``flights``;
see docs/observability.md), with ``repr`` added, and ``kind``,
``cooling_down`` and ``server`` (what the server reports) added to each
tier: a script written against one reads the other.

The counters are this process's: a command runs in a fresh process, so they
start at zero (the servers' own figures are under ``server``). For a running
application's counters, export them (``stratacache.metrics``).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from stratacache.metrics import snapshot

from ... import backend_aliases, get_cache, named_caches_setting

COLUMNS = (
    "hits",
    "misses",
    "errors",
    "fetches",
    "writes",
    "rejected",
    "chunked_reads",
    "bytes_read",
    "bytes_written",
)


class Command(BaseCommand):
    help = (
        "Shows each stratacache tier (STRATACACHE caches and CACHES aliases served by TieredCacheBackend): "
        "this process's counters and what the server reports."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cache", action="append", help="only this cache (default: all)")
        parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
        parser.add_argument("--no-server", action="store_true", help="do not ask the servers")

    def handle(self, *args: Any, **options: Any) -> None:
        names = options["cache"] or list(
            dict.fromkeys(["default", *named_caches_setting(), *backend_aliases()])
        )
        report = {}
        for name in names:
            cache = get_cache(name)
            stats = snapshot(cache)
            for tier, counters in zip(cache.tiers, stats["tiers"]):
                server: Any = {}
                if not options["no_server"]:
                    try:
                        server = tier.server_stats()
                    except Exception as exc:
                        server = {"error": f"{type(exc).__name__}: {exc}"}
                counters["server"] = server
            report[name] = {"repr": repr(cache), **stats}
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
            return
        for name, entry in report.items():
            self.stdout.write(self.style.MIGRATE_HEADING(f"cache {name!r}: {entry['repr']}"))
            self.stdout.write("  (counters of this process since it started; the servers' own figures below)")
            for tier in entry["tiers"]:
                self.stdout.write(f"\n  tier {tier['name']} ({tier['kind']})")
                width = max(len(c) for c in COLUMNS)
                for column in COLUMNS:
                    self.stdout.write(f"    {column:<{width}}  {tier[column]:>12}")
                server = tier["server"]
                if isinstance(server, dict) and server:
                    self.stdout.write("    server:")
                    for key, value in list(server.items())[:12]:
                        if isinstance(value, dict):
                            picked = {
                                k: value[k]
                                for k in (
                                    "curr_items",
                                    "bytes",
                                    "evictions",
                                    "get_hits",
                                    "get_misses",
                                )
                                if k in value
                            }
                            value = picked or value
                        self.stdout.write(f"      {key}: {value}")
            reads = entry["reads"]
            self.stdout.write(
                "\n  reads: "
                + ", ".join(
                    f"{k}={reads[k]}"
                    for k in (
                        "reads",
                        "keys",
                        "request_hits",
                        "local_hits",
                        "remote_hits",
                        "loads",
                        "misses",
                    )
                )
            )
            if entry["local"]:
                local = entry["local"]
                self.stdout.write(
                    f"  local: entries={local['entries']} weight={local['weight']} hits={local['hits']} "
                    f"misses={local['misses']} evictions={local['evictions']} expirations={local['expirations']}\n"
                )
