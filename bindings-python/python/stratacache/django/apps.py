"""The Django app: registers the system checks."""

from __future__ import annotations

from django.apps import AppConfig


class StratacacheConfig(AppConfig):
    name = "stratacache.django"
    label = "stratacache"
    verbose_name = "stratacache"

    def ready(self) -> None:
        from django.core import checks

        from . import checks as stratacache_checks

        checks.register(stratacache_checks.check_settings, checks.Tags.caches)
        checks.register(stratacache_checks.check_middleware)

        from . import backend_checks

        checks.register(backend_checks.check_backend_paths, checks.Tags.caches)
        checks.register(backend_checks.check_backend_options, checks.Tags.caches)
        checks.register(stratacache_checks.check_connections, checks.Tags.caches, deploy=True)
