"""``manage.py stratacache_warm <dotted.path>``: fills every tier from a
generator of ``(key, loader)`` pairs, with a progress bar (the
``generate_course_blocks --all_courses`` of this project)."""

from __future__ import annotations

import inspect
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from ....tiered import DEFAULT_TTL
from ... import get_cache


def _items(source: Any) -> Any:
    produced = source() if callable(source) and not inspect.isgenerator(source) else source
    return produced


def _unpack(item: Any) -> tuple:
    if isinstance(item, tuple) and len(item) in (2, 3):
        key, loader = item[0], item[1]
        ttl = item[2] if len(item) == 3 else DEFAULT_TTL
    elif hasattr(item, "key") and hasattr(item, "loader"):
        key, loader, ttl = item.key, item.loader, getattr(item, "ttl", DEFAULT_TTL)
    else:
        raise CommandError(
            f"the generator yielded {item!r}: yield (key, loader) or (key, loader, ttl_seconds), "
            "where loader() returns the value"
        )
    if not callable(loader):
        raise CommandError(
            f"the loader for key {key!r} is not callable: yield (key, loader) with loader() -> value"
        )
    return key, loader, ttl


class Command(BaseCommand):
    help = (
        "Computes values and writes them to every tier of a stratacache cache. DOTTED_PATH names a "
        "function (or iterable) yielding (key, loader) or (key, loader, ttl) items."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("dotted_path", help="e.g. myapp.cache_warmers.all_course_outlines")
        parser.add_argument(
            "--cache", default="default", help="the STRATACACHE cache to fill (default: default)"
        )
        parser.add_argument(
            "--missing-only",
            action="store_true",
            help="load only keys no tier has (default: recompute all)",
        )
        parser.add_argument("--total", type=int, default=None, help="number of items, for the progress bar")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            source = import_string(options["dotted_path"])
        except ImportError as exc:
            raise CommandError(f"cannot import {options['dotted_path']!r}: {exc}") from exc
        cache = get_cache(options["cache"])
        items = _items(source)
        total = options["total"]
        if total is None and hasattr(items, "__len__"):
            total = len(items)
        progress = None
        if not options["no_progress"]:
            try:
                from tqdm import tqdm

                progress = tqdm(
                    total=total,
                    unit="key",
                    desc="warming",
                    file=self.stderr._out,
                    dynamic_ncols=True,
                )
            except ImportError:
                self.stderr.write("tqdm is not installed: pip install tqdm for a progress bar")
        warmed = skipped = 0
        failures: list = []
        for item in items:
            key, loader, ttl = _unpack(item)
            try:
                if options["missing_only"]:
                    loaded: list = []
                    cache.get_or_load(
                        key, lambda loader=loader, loaded=loaded: loaded.append(1) or loader(), ttl
                    )
                    if loaded:
                        warmed += 1
                    else:
                        skipped += 1
                else:
                    cache.refresh(key, loader, ttl)
                    warmed += 1
            except Exception as exc:
                failures.append((key, exc))
            if progress is not None:
                progress.update(1)
                progress.set_postfix(warmed=warmed, failed=len(failures), refresh=False)
        if progress is not None:
            progress.close()
        summary = f"warmed {warmed} key(s), skipped {skipped} already cached, {len(failures)} failed"
        self.stdout.write(summary)
        if failures:
            for key, exc in failures[:10]:
                self.stderr.write(f"  {key!r}: {type(exc).__name__}: {exc}")
            if len(failures) > 10:
                self.stderr.write(f"  ... and {len(failures) - 10} more")
            raise CommandError(f"{len(failures)} loader(s) failed; the other keys were written")
        sys.stdout.flush()
