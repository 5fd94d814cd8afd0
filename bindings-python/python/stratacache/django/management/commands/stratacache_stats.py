"""``manage.py stratacache_stats``: a table per tier of every configured cache."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand

from ... import backend_aliases, get_cache, stratacache_settings

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
            dict.fromkeys(["default", *(stratacache_settings().get("CACHES") or {}), *backend_aliases()])
        )
        report = {}
        for name in names:
            cache = get_cache(name)
            stats = cache.stats()
            tiers = []
            for tier, counters in zip(cache.tiers, stats["tiers"]):
                server: Any = {}
                if not options["no_server"]:
                    try:
                        server = tier.server_stats()
                    except Exception as exc:
                        server = {"error": f"{type(exc).__name__}: {exc}"}
                tiers.append({"name": tier.name, "kind": tier.kind, "counters": counters, "server": server})
            report[name] = {
                "repr": repr(cache),
                "tiers": tiers,
                "reads": stats["reads"],
                "local": stats["local"],
            }
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
            return
        for name, entry in report.items():
            self.stdout.write(self.style.MIGRATE_HEADING(f"cache {name!r}: {entry['repr']}"))
            for tier in entry["tiers"]:
                self.stdout.write(f"\n  tier {tier['name']} ({tier['kind']})")
                width = max(len(c) for c in COLUMNS)
                for column in COLUMNS:
                    self.stdout.write(f"    {column:<{width}}  {tier['counters'][column]:>12}")
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
