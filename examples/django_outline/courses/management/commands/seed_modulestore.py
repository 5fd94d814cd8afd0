"""``manage.py seed_modulestore``: writes the example's modulestore."""

from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from courses.modulestore import LARGE_COURSE, seed


class Command(BaseCommand):
    help = (
        "Writes the SQLite modulestore (settings.DEMO_MODULESTORE): DEMO_COURSES courses "
        f"and {LARGE_COURSE}, whose outline is over 1 MiB. Keeps an existing one unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--path", default=None, help="where to write it (default: settings.DEMO_MODULESTORE)"
        )
        parser.add_argument("--force", action="store_true", help="replace an existing modulestore")

    def handle(self, *args, path=None, force=False, **options):
        target = Path(path or settings.DEMO_MODULESTORE)
        if target.exists() and not force:
            self.stdout.write(f"modulestore already at {target} (--force to rewrite it)")
            return
        started = time.monotonic()
        ids = seed(target, settings.DEMO_COURSES)
        self.stdout.write(f"wrote {len(ids)} courses to {target} in {time.monotonic() - started:.1f} s")
