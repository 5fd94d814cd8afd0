"""The Django app: registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class TiercacheConfig(AppConfig):
    name = "tiercache.django"
    label = "tiercache"
    verbose_name = "tiercache"

    def ready(self) -> None:
        from django.core import checks

        from . import checks as tiercache_checks

        checks.register(tiercache_checks.check_settings, checks.Tags.caches)
        checks.register(tiercache_checks.check_middleware)
