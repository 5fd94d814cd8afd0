"""A Django Debug Toolbar panel: every stratacache read of the request, with
its keys, the tiers consulted, where each key came from, and the time.

::

    DEBUG_TOOLBAR_PANELS = [
        ...,
        "stratacache.django.panels.StratacachePanel",
    ]
"""

from __future__ import annotations

import contextvars
from typing import Any

from debug_toolbar.panels import Panel
from django.utils.html import format_html, format_html_join

from .._observe import ReadEvent, add_observer, remove_observer

__all__ = ["StratacachePanel"]

#: The panel recording the reads of the current request (reads of other
#: requests served at the same time are not this request's).
_recording: contextvars.ContextVar = contextvars.ContextVar("stratacache_ddt_panel", default=None)

_MAX_KEYS_SHOWN = 5


def _short(key: Any) -> str:
    text = str(key)
    return text if len(text) <= 120 else text[:117] + "..."


class StratacachePanel(Panel):
    """Lists each read of the request: cache, method, keys, tiers consulted
    (batched fetches per tier), sources (keys answered per request, local,
    tier, loader or miss) and time.

    >>> DEBUG_TOOLBAR_PANELS = ["stratacache.django.panels.StratacachePanel"]
    """

    title = "stratacache"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reads: list = []
        self._token: Any = None

    def _record(self, event: ReadEvent) -> None:
        if _recording.get() is self:
            self._reads.append(event)

    def enable_instrumentation(self) -> None:
        self._token = _recording.set(self)
        add_observer(self._record)

    def disable_instrumentation(self) -> None:
        remove_observer(self._record)
        if self._token is not None:
            try:
                _recording.reset(self._token)
            except ValueError:  # reset from another context: just clear it
                _recording.set(None)
            self._token = None

    def generate_stats(self, request: Any, response: Any) -> None:
        reads = [
            {
                "cache": e.cache,
                "method": e.method,
                "keys": [_short(k) for k in e.keys],
                "consulted": e.consulted,
                "sources": e.sources,
                "source": e.source,
                "ms": round(e.seconds * 1000, 3),
                "error": e.error,
            }
            for e in self._reads
        ]
        self.record_stats(
            {
                "reads": reads,
                "total_ms": round(sum(r["ms"] for r in reads), 3),
                "keys": sum(len(r["keys"]) for r in reads),
            }
        )

    @property
    def nav_subtitle(self) -> str:
        stats = self.get_stats()
        reads = stats.get("reads") or []
        return f"{len(reads)} reads, {stats.get('keys', 0)} keys in {stats.get('total_ms', 0):.2f} ms"

    @property
    def content(self) -> str:
        stats = self.get_stats()
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    i + 1,
                    f"{r['cache']}.{r['method']}",
                    ", ".join(r["keys"][:_MAX_KEYS_SHOWN]),
                    f" (+{len(r['keys']) - _MAX_KEYS_SHOWN} more)"
                    if len(r["keys"]) > _MAX_KEYS_SHOWN
                    else "",
                    ", ".join(f"{t} ({n})" for t, n in r["consulted"].items()) or "none",
                    ", ".join(f"{s}: {n}" for s, n in r["sources"].items()) or "-",
                    f"{r['ms']:.3f} ms",
                    r["error"] or "",
                )
                for i, r in enumerate(stats.get("reads") or [])
            ),
        )
        return format_html(
            '<table class="stratacache-reads"><thead><tr><th>#</th><th>Read</th><th>Keys</th>'
            "<th>Tiers consulted</th><th>Source (keys)</th><th>Time</th><th>Error</th></tr></thead>"
            "<tbody>{}</tbody></table><p>{} reads, {} keys, {} ms in total.</p>",
            rows,
            len(stats.get("reads") or []),
            stats.get("keys", 0),
            stats.get("total_ms", 0),
        )
