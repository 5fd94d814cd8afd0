"""``manage.py stratacache_prune``: removes from the storage tiers what
has expired and what older key versions left behind.

Storages (a filesystem, S3) never expire objects themselves. Each object is
an envelope whose header carries its hard expiry, and each versioned key
(``namespace|v3|part...``) belongs to a *family* (the same key at any
version). The command deletes an object when its envelope has expired, or
when its family has ``--keep`` newer versions; chunks go with their value.

::

    python manage.py stratacache_prune --dry-run          # what would go
    python manage.py stratacache_prune --keep 2           # newest 2 versions per family
    python manage.py stratacache_prune --cache default --no-progress
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from django.core.management.base import BaseCommand, CommandError

from stratacache import _core
from stratacache.tiers import StorageTier, storage_key

_VERSIONED = re.compile(r"^([^|]+)\|v(\d+)((?:\|.*)?)$")
_CHUNK_NS = _core.CHUNK_KEY_PREFIX.split("|")[0]


def key_family(key: str) -> tuple[Optional[str], Optional[int]]:
    """``(family, version)`` of a versioned key (``ns|v3|a`` → ``("ns|*|a",
    3)``); ``(None, None)`` for a plain or internal key.

    >>> key_family("outline|v3|course-v1%3AedX")
    ('outline|*|course-v1%3AedX', 3)
    """
    m = _VERSIONED.match(key)
    if m is None or m.group(1).startswith(_core.RESERVED_PREFIX + "."):
        return None, None
    return f"{m.group(1)}|*{m.group(3)}", int(m.group(2))


def _chunk_owner(key: str) -> Optional[str]:
    """The main key a chunk key belongs to (its first part, unescaped)."""
    m = _VERSIONED.match(key)
    if m is None or m.group(1) != _CHUNK_NS:
        return None
    parts = m.group(3).split("|")
    if len(parts) < 2:
        return None
    raw = parts[1].encode("utf-8")
    return re.sub(rb"%([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]), raw).decode("utf-8", "replace")


@dataclass
class PrunePlan:
    """What a prune of one tier removes, and why."""

    scanned: int = 0
    expired: list = field(default_factory=list)
    old_versions: list = field(default_factory=list)
    orphan_chunks: list = field(default_factory=list)
    unreadable: int = 0

    @property
    def names(self) -> list:
        return [*self.expired, *self.old_versions, *self.orphan_chunks]

    def as_dict(self) -> dict:
        return {
            "scanned": self.scanned,
            "expired": len(self.expired),
            "old_versions": len(self.old_versions),
            "orphan_chunks": len(self.orphan_chunks),
            "unreadable": self.unreadable,
            "deleted": len(self.names),
        }


def plan_prune(
    tier: StorageTier,
    *,
    keep: int,
    now_ms: int,
    keyring: Optional[list],
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> PrunePlan:
    """Reads every object of ``tier`` once and returns what to delete: expired
    envelopes, versions beyond the newest ``keep`` of each family, and chunks
    whose value is deleted or gone. Objects that cannot be read as envelopes
    are counted and kept."""
    plan = PrunePlan()
    names = tier.names()
    plan.scanned = len(names)
    keys: dict = {}
    chunks: dict = {}
    families: dict = {}
    for name in progress(names):
        key = storage_key(name)
        if key is None:
            plan.unreadable += 1
            continue
        owner = _chunk_owner(key)
        if owner is not None:
            chunks[name] = owner
            continue
        data = tier.read_head(name)
        if data is None:
            continue
        try:
            head = _core.decode_envelope(data, signing_keys=keyring, key=key)
        except Exception:
            try:  # a signed envelope whose key id this process does not know
                head = _core.decode_envelope(data, key=key)
            except Exception:
                plan.unreadable += 1
                continue
        keys[key] = name
        hard = head["header"].get("hard_expiry_ms")
        if hard is not None and hard <= now_ms:
            plan.expired.append(name)
            continue
        family, version = key_family(key)
        if family is not None:
            families.setdefault(family, []).append((version, name))
    for versions in families.values():
        versions.sort(reverse=True)
        plan.old_versions.extend(name for _, name in versions[keep:])
    gone = set(plan.expired) | set(plan.old_versions)
    for name, owner in chunks.items():
        if owner not in keys or keys[owner] in gone:
            plan.orphan_chunks.append(name)
    return plan


def _progress(enabled: bool, desc: str, file: Any) -> Callable[[Iterable], Iterable]:
    if not enabled:
        return lambda it: it
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is the [progress] extra
        file.write("tqdm is not installed: pip install tqdm for a progress bar")
        return lambda it: it
    return lambda it: tqdm(it, desc=desc, unit="obj", file=getattr(file, "_out", file))


class Command(BaseCommand):
    help = (
        "Deletes expired entries and old key versions (keeping the newest --keep per key family) "
        "from the storage tiers of the configured caches."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--cache", action="append", help="only this cache (default: all)")
        parser.add_argument("--keep", type=int, default=1, help="versions kept per key family (default 1)")
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be deleted, delete nothing"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument("--json", action="store_true", help="print a JSON summary")

    def handle(self, *args: Any, **options: Any) -> None:
        from django.core.cache import caches

        from stratacache.tiered import _keyring

        from ... import (
            _configured_in_stratacache,
            backend_aliases,
            cache_config,
            get_cache,
            named_caches_setting,
            signing_keys_from_settings,
        )
        from ...backend import _signing_keys

        if options["keep"] < 1:
            raise CommandError("--keep must be at least 1 (the newest version of a family is never pruned)")
        # CACHES aliases on the backend (their storage tiers come from
        # OPTIONS['TIERS'] / ['TIERS_AFTER']) next to the STRATACACHE caches.
        aliases = [a for a in backend_aliases() if not _configured_in_stratacache(a)]
        names = options["cache"] or list(dict.fromkeys(["default", *named_caches_setting(), *aliases]))
        report: dict = {}
        for name in names:
            if name in aliases:
                backend = caches[name]
                cache = backend.tiered
                keyring = _keyring(_signing_keys(backend._options))
            else:
                cache = get_cache(name)
                keyring = _keyring(signing_keys_from_settings(cache_config(name)))
            for tier in cache.tiers:
                if not isinstance(tier, StorageTier):
                    continue
                plan = plan_prune(
                    tier,
                    keep=options["keep"],
                    now_ms=_core.now_ms(),
                    keyring=keyring,
                    progress=_progress(
                        not options["no_progress"] and not options["json"],
                        f"{name}/{tier.name}",
                        self.stderr,
                    ),
                )
                if not options["dry_run"]:
                    tier.delete_names(plan.names)
                summary = plan.as_dict()
                summary["dry_run"] = options["dry_run"]
                report[f"{name}/{tier.name}"] = summary
                if not options["json"]:
                    verb = "would delete" if options["dry_run"] else "deleted"
                    self.stdout.write(
                        f"{name}/{tier.name}: scanned {plan.scanned}, {verb} {len(plan.names)} "
                        f"({len(plan.expired)} expired, {len(plan.old_versions)} old versions, "
                        f"{len(plan.orphan_chunks)} orphan chunks), {plan.unreadable} unreadable kept"
                    )
                    if options["dry_run"] and options["verbosity"] > 1:
                        for obj in plan.names:
                            self.stdout.write(f"  {obj}")
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        elif not report:
            self.stdout.write("no storage tiers configured: nothing to prune")
