#!/usr/bin/env bash
# The WebAssembly package's suite: builds the package once
# (scripts/build-wasm.sh), packs it with `npm pack` and installs the tarball
# for the tests, then runs with Node's test runner: the unit tests and the
# shared golden vectors over the built package, the end-to-end tests in real
# workerd (Miniflare, loopback), the packaging test (the README's worker
# quick start served by `wrangler dev` and bundled by wrangler and by esbuild from the packed tarball,
# installed into an empty folder with no Rust, run in workerd), and the cross-runtime test against the
# Python package, and a smoke test in headless Chromium (Debian's package,
# installed when missing). Exits non-zero on any failure.
# Usage: bash scripts/test-wasm.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

WASM_DIR="$REPO_ROOT/bindings-wasm"
TEST_DIR="$WASM_DIR/test"

bash scripts/build-wasm.sh

step "npm pack the package; install the tarball for the tests"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$WASM_DIR/pkg" && npm pack --silent --pack-destination "$tmp" >/dev/null)
tarball="$(ls "$tmp"/stratacache-*.tgz)"
printf 'packed %s (%d bytes)\n' "$(basename "$tarball")" "$(stat -c %s "$tarball")"
rm -rf "$TEST_DIR/node_modules/stratacache"
mkdir -p "$TEST_DIR/node_modules/stratacache"
tar -xzf "$tarball" -C "$TEST_DIR/node_modules/stratacache" --strip-components=1

# The cross-runtime test needs the Python package (built by
# scripts/test-python.sh into .venv); build it here if it is missing.
PY="$VENV/bin/python"
"$PY" -c 'import stratacache' >/dev/null 2>&1 || ensure_extension

cd "$TEST_DIR"
step "Unit tests and golden vectors (node --test, over the packed package)"
node --test local.test.mjs vectors.test.mjs tiered.test.mjs base64.test.mjs metrics.test.mjs background.test.mjs protocol.test.mjs wire.test.mjs

step "End-to-end in workerd (Miniflare, loopback)"
node --test e2e.test.mjs

step "Packaging: the tarball in an empty folder, its exports, the README's worker under wrangler dev and bundled by wrangler and esbuild, run in workerd"
STRATACACHE_TARBALL="$tarball" node --test packaging/

step "Cross-runtime: Python package <-> JS package"
STRATACACHE_PYTHON="$PY" node --test cross.test.mjs

step "Cross-runtime: odd plain string keys through a real memcached (Python <-> JS)"
choose_port_base
trap 'rm -rf "$tmp"; bash "$REPO_ROOT/scripts/servers.sh" stop memcached || true' EXIT
bash "$REPO_ROOT/scripts/servers.sh" start memcached
(eval "$(bash "$REPO_ROOT/scripts/servers.sh" env)" && STRATACACHE_PYTHON="$PY" node --test cross-keys.test.mjs)

step "Browser: headless Chromium loads the package from a page on 127.0.0.1"
command -v chromium >/dev/null 2>&1 || apt_install chromium
node browser/run.mjs "$(command -v chromium)"
