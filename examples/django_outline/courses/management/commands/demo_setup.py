"""``manage.py demo_setup``: everything the site needs before it serves."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from outline_site.s3 import ensure_bucket


class Command(BaseCommand):
    help = (
        "Seeds the modulestore if it is missing, and creates the S3 bucket of the storage tier if S3 is used."
    )

    def handle(self, *args, **options):
        call_command("seed_modulestore", stdout=self.stdout)
        if ensure_bucket({**os.environ, "DEMO_STORAGE": settings.DEMO_STORAGE}):
            self.stdout.write(f"S3 bucket {settings.S3_BUCKET} ready at {settings.S3_ENDPOINT}")
