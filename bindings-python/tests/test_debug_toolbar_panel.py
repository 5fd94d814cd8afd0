"""The Django Debug Toolbar panel (issue 17, item 7): a page that reads
through the real tiers, the toolbar's own middleware and panel view, and a
screenshot of the panel in headless Chromium."""

import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import debug_toolbar
import pytest
from django.test import Client, override_settings

from stratacache import _observe
from stratacache.django import reset_caches
from stratacache.testing import isolated_caches

MIDDLEWARE = [
    "debug_toolbar.middleware.DebugToolbarMiddleware",
    "stratacache.django.middleware.RequestCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


@pytest.fixture(autouse=True)
def fresh(s3_bucket):
    reset_caches()
    with isolated_caches():
        yield
    reset_caches()


def panel_content():
    client = Client()
    with override_settings(MIDDLEWARE=MIDDLEWARE, DEBUG=True):
        page = client.get("/outline/")
        assert page.status_code == 200
        html = page.content.decode()
        request_id = re.search(r'data-request-id="([0-9a-f]+)"', html).group(1)
        assert "stratacache" in html and "reads" in html  # the panel's subtitle in the toolbar
        rendered = client.get(
            "/__debug__/render_panel/", {"request_id": request_id, "panel_id": "StratacachePanel"}
        )
    assert rendered.status_code == 200
    return html, json.loads(rendered.content)["content"]


def test_panel_lists_each_read_with_tiers_sources_and_time():
    html, content = panel_content()
    assert re.search(r"2 reads, 9 keys in [0-9.]+ ms", html)
    assert "default.get_or_load" in content and "default.get_many" in content
    assert "course-v1:edX+DemoX+Demo outline" in content
    assert "memcached (1)" in content and "storage (1)" in content  # tiers consulted
    assert "loader: 1" in content and "miss: 8" in content  # where the keys came from
    assert "block-0" in content and "(+3 more)" in content
    assert not _observe._originals  # reads are unwrapped again after the request


def _png_pixels(path):
    """(width, height, count of non-white pixels) of an RGB(A) 8-bit PNG."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    prev = bytearray(stride)
    dark = 0
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, channels):
            if sum(line[x : x + 3]) < 600:
                dark += 1
        prev = line
    return width, height, dark


def test_panel_screenshot_in_headless_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is needed: scripts/test-python.sh installs it (apt-get install chromium)"
    _html, content = panel_content()
    css = (Path(debug_toolbar.__file__).parent / "static/debug_toolbar/css/toolbar.css").read_text()
    page = tmp_path / "panel.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><style>"
        + css
        + "</style></head><body><div id='djDebug'><div class='djdt-panelContent' style='display:block'>"
        "<div class='djDebugPanelTitle'><h3>stratacache</h3></div><div class='djDebugPanelContent'>"
        "<div class='djdt-scroll'>" + content + "</div></div></div></div></body></html>",
        encoding="utf-8",
    )
    shot = tmp_path / "panel.png"
    profile = tmp_path / "profile"
    run = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1200,500"]
    subprocess.run(
        [*run, f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120
    )
    dom = subprocess.run(
        [*run, "--dump-dom", page.as_uri()], check=True, capture_output=True, timeout=120, text=True
    ).stdout
    assert "default.get_many" in dom and "memcached (1)" in dom  # what Chromium rendered
    width, height, dark = _png_pixels(shot)
    assert (width, height) == (1200, 500)
    assert dark > 2000, "the screenshot is blank"  # text and table rules were drawn
    keep = os.environ.get("STRATACACHE_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, Path(keep) / "debug_toolbar_panel.png")
