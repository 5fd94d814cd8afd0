"""The PEP 517 build backend of the `stratacache` package: maturin, after two checks.

Building from source needs Rust (cargo and rustc, at least the workspace's
``rust-version``) and a C compiler (for mimalloc). When one is missing the
build stops with one line that says what to install, instead of maturin's
attempt to download a toolchain. And cargo's output goes to a cache folder
outside the source tree (``$CARGO_TARGET_DIR`` if set, else
``~/.cache/stratacache/target``), so ``pip install ./bindings-python``
leaves no ``target/`` in the checkout.

Example (what pip does)::

    >>> import stratacache_build
    >>> stratacache_build.get_requires_for_build_wheel()  # doctest: +SKIP
    []
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import maturin

# Keep in step with `rust-version` in the workspace's Cargo.toml.
RUST_MINIMUM = (1, 88)


def _fail(message: str) -> None:
    sys.stderr.write(f"stratacache: {message}\n")
    raise SystemExit(1)


def _check_toolchain() -> None:
    """Stops the build with one clear line when Rust or a C compiler is missing."""
    wanted = ".".join(map(str, RUST_MINIMUM))
    if shutil.which("cargo") is None or shutil.which("rustc") is None:
        _fail(
            f"building from source needs Rust {wanted}+ (cargo and rustc on PATH; https://rustup.rs) "
            "and a C compiler; or install a prebuilt wheel"
        )
    out = subprocess.run(["rustc", "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"(\d+)\.(\d+)", out)
    if found and (int(found.group(1)), int(found.group(2))) < RUST_MINIMUM:
        _fail(f"building from source needs Rust {wanted}+, found {out.strip()} (rustup update)")
    if not (os.environ.get("CC") or any(shutil.which(c) for c in ("cc", "gcc", "clang"))):
        _fail("building from source needs a C compiler (cc, gcc or clang; or set CC), for mimalloc")


def _outside_the_tree() -> None:
    if not os.environ.get("CARGO_TARGET_DIR"):
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        os.environ["CARGO_TARGET_DIR"] = os.path.join(cache, "stratacache", "target")


def _prepare() -> None:
    _check_toolchain()
    _outside_the_tree()


def get_requires_for_build_wheel(config_settings=None):
    """What the wheel build needs besides maturin (nothing)."""
    return maturin.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_sdist(config_settings=None):
    """What the sdist build needs besides maturin (nothing)."""
    return maturin.get_requires_for_build_sdist(config_settings)


def get_requires_for_build_editable(config_settings=None):
    """What an editable build needs besides maturin (nothing)."""
    return maturin.get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    """The wheel's metadata (maturin asks cargo for it)."""
    _prepare()
    return maturin.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    """The editable wheel's metadata (maturin asks cargo for it)."""
    _prepare()
    return maturin.prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    """Builds the wheel (release) with cargo's output outside the source tree."""
    _prepare()
    return maturin.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """Builds an editable wheel with cargo's output outside the source tree."""
    _prepare()
    return maturin.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    """Builds the sdist (needs cargo, for the workspace's metadata)."""
    _prepare()
    return maturin.build_sdist(sdist_directory, config_settings)
