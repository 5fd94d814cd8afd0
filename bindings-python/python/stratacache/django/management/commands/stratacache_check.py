"""``manage.py stratacache_check``: connects to each tier of every
configured cache once and reports what fails (exit status 1 if any does).

::

    $ python manage.py stratacache_check
    default  memcached  memcached  OK      0.4 ms
    default  redis      redis      OK      0.6 ms
    default  storage    storage    FAILED  EndpointConnectionError: Could not connect ...
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...checks import probe_tiers


class Command(BaseCommand):
    help = "Connects to each stratacache tier once and reports which ones fail."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cache", action="append", help="only this cache (default: all)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        rows = probe_tiers(options["cache"])
        failed = [r for r in rows if r[3] is not None]
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    [
                        {
                            "cache": c,
                            "tier": t,
                            "kind": k,
                            "ok": e is None,
                            "error": e,
                            "ms": round(s * 1000, 2),
                        }
                        for c, t, k, e, s in rows
                    ],
                    indent=2,
                )
            )
        else:
            if not rows:
                self.stdout.write(
                    self.style.WARNING("no remote tiers configured (settings.STRATACACHE['TIERS'] is empty)")
                )
            for cache, tier, kind, error, seconds in rows:
                status = self.style.SUCCESS("OK") if error is None else self.style.ERROR("FAILED")
                detail = f"{seconds * 1000:.1f} ms" if error is None else error
                self.stdout.write(f"{cache}  {tier}  {kind}  {status}  {detail}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(rows)} tier(s) failed", returncode=1)
