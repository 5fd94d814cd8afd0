#!/usr/bin/env bash
# Builds the npm package `stratacache` (WebAssembly + JS + TypeScript types)
# into bindings-wasm/pkg/, ready for `npm pack`. Installs what is missing:
# the wasm32 target, wasm-bindgen-cli of exactly the wasm-bindgen version in
# Cargo.lock, and the dev packages of bindings-wasm/ (binaryen's wasm-opt,
# miniflare, lru-cache). Prints the package sizes.
# Usage: bash scripts/build-wasm.sh      (PROFILE=dev for a quick debug build)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"

WASM_DIR="$REPO_ROOT/bindings-wasm"
PKG="$WASM_DIR/pkg"

ensure_rust

# wasm-bindgen-cli must match the wasm-bindgen crate exactly.
bindgen_version="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)"
if [ -z "$bindgen_version" ]; then
  cargo metadata --format-version 1 >/dev/null
  bindgen_version="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)"
fi
installed="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$installed" != "$bindgen_version" ]; then
  step "Installing wasm-bindgen-cli $bindgen_version (was: ${installed:-none}; a few minutes)"
  cargo install wasm-bindgen-cli --version "$bindgen_version" --force --quiet
fi

# The dev packages (exact versions in bindings-wasm/package-lock.json).
if [ ! -f "$WASM_DIR/node_modules/.package-lock.json" ] || [ "$WASM_DIR/package-lock.json" -nt "$WASM_DIR/node_modules/.package-lock.json" ]; then
  step "Installing the dev packages of bindings-wasm (npm ci)"
  (cd "$WASM_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

# The release profile for wasm, defined here so the workspace's own
# profiles stay as they are. Measured (wasm after wasm-opt, gzipped):
# opt-level 3: 228 KB / 96 KB; "s": 234 / 100; "z": 216 / 92 but
# LocalCache#set 1.5x slower; "z" with opt-level 3 for the stratacache crates:
# 235 / 99 (fat LTO optimizes the whole at the cdylib's level); lto off: 230.
# wasm-opt -Oz instead of -O3 saves under 1 KB. So: opt-level 3. "z" is slow
# because it leaves even `Vec` indexing as calls. LLVM's inline threshold
# lowered from 225 (for the wasm target only) keeps opt-level 3 and its
# speed (the hot path's helpers are `#[inline(always)]`; LocalCache#set and
# get measured the same) but stops the wide inlining into the exported
# shims: 228.6 -> 219.6 KB, 96.1 -> 92.3 KB gzipped at 40; today 10 gives
# 1.2 KB (0.5 KB gzipped) less than 40 and the same LocalCache speed, a
# TieredCache read about 10% slower (bench/tiered.mjs). Now 45: a read of
# 100 local hits 16.2 -> 14.5 us (35 or less: no faster), +0.8 KB gzipped,
# paid for by short import and export names (build/minify-names.mjs,
# -0.6 KB gzipped). strip stays
# off because wasm-bindgen reads the target_features section; wasm-opt
# strips debug info and producers afterwards.
profile="${PROFILE:-wasm-release}"
out_dir="$profile"; [ "$profile" = dev ] && out_dir=debug
raw_wasm="target/wasm32-unknown-unknown/$out_dir/stratacache_wasm.wasm"
rm -rf "$PKG"
mkdir -p "$PKG"

# Panic locations name source files: without the checkout's and cargo's own
# paths the module is the same bytes wherever it is built
# (std's sources, where the rust-src component is installed, get the name
# they have where it is not.)
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
rust_src="$(rustc --print sysroot)/lib/rustlib/src/rust"
rustc_commit="$(rustc -vV | awk '/^commit-hash/{print $2}')"
remap="\"--remap-path-prefix=$REPO_ROOT=stratacache\", \"--remap-path-prefix=$cargo_home/registry/src=crates\", \"--remap-path-prefix=$rust_src=/rustc/$rustc_commit\""

# One module per entry: stratacache_core (what `import "stratacache"` loads)
# and stratacache_tools (`stratacache/tools`: EnvelopeCodec too).
build_module() { # <out-name> [cargo feature]
  local name="$1" features=()
  [ -n "${2:-}" ] && features=(--features "$2")
  step "cargo build -p stratacache-wasm ${features[*]} --target wasm32-unknown-unknown --profile $profile"
  cargo build -p stratacache-wasm "${features[@]}" --target wasm32-unknown-unknown --profile "$profile" --quiet \
    --config 'profile.wasm-release.inherits="release"' \
    --config 'profile.wasm-release.opt-level=3' \
    --config 'profile.wasm-release.lto="fat"' \
    --config 'profile.wasm-release.codegen-units=1' \
    --config 'profile.wasm-release.panic="abort"' \
    --config 'profile.wasm-release.debug=false' \
    --config 'profile.wasm-release.strip=false' \
    --config "target.wasm32-unknown-unknown.rustflags=[\"-C\", \"llvm-args=-inline-threshold=45\", $remap]"
  step "wasm-bindgen + wasm-opt -> bindings-wasm/pkg/${name}_bg.wasm"
  wasm-bindgen --target web --no-typescript --out-dir "$PKG" --out-name "$name" "$raw_wasm"
  if [ "$profile" != dev ]; then
    "$WASM_DIR/node_modules/.bin/wasm-opt" -O3 \
      --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue \
      --strip-debug --strip-producers \
      "$PKG/${name}_bg.wasm" -o "$PKG/${name}_bg.wasm"
    node "$WASM_DIR/build/minify-names.mjs" "$WASM_DIR/node_modules/.bin/wasm-opt" "$PKG/${name}_bg.wasm" "$PKG/${name}.js" \
      --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue
  fi
}
build_module stratacache_tools tools
build_module stratacache_core
cp "$WASM_DIR"/js/*.js "$WASM_DIR"/js/*.d.ts "$WASM_DIR/js/README.md" "$PKG/"
version="$(awk -F'"' '/^version = /{print $2; exit}' Cargo.toml)"
cat > "$PKG/package.json" <<JSON
{
  "name": "stratacache",
  "version": "$version",
  "description": "One caching core (Rust, WebAssembly) for edge workers, Node and browsers: request, local and remote tiers (Workers KV, Cache API), versioned keys, signed envelopes, chunking, stampede control.",
  "license": "Apache-2.0",
  "homepage": "https://github.com/stratacache/stratacache#readme",
  "repository": { "type": "git", "url": "git+https://github.com/stratacache/stratacache.git", "directory": "bindings-wasm" },
  "bugs": "https://github.com/stratacache/stratacache/issues",
  "type": "module",
  "types": "./index.d.ts",
  "main": "./node.js",
  "exports": {
    ".": {
      "types": "./index.d.ts",
      "workerd": "./workerd.js",
      "worker": "./workerd.js",
      "node": "./node.js",
      "browser": "./browser.js",
      "deno": "./browser.js",
      "default": "./browser.js"
    },
    "./tools": {
      "types": "./tools.d.ts",
      "workerd": "./tools-workerd.js",
      "worker": "./tools-workerd.js",
      "node": "./tools-node.js",
      "default": "./tools-browser.js"
    },
    "./metrics": { "types": "./metrics.d.ts", "default": "./metrics.js" },
    "./package.json": "./package.json"
  },
  "files": ["*.js", "*.d.ts", "*.wasm", "README.md"],
  "engines": { "node": ">=20" },
  "keywords": ["cache", "cloudflare-workers", "workerd", "workers-kv", "tiered-cache", "lru", "wasm", "stampede"]
}
JSON

wasm_bytes=$(stat -c %s "$PKG/stratacache_core_bg.wasm")
wasm_gz=$(gzip -9 -c "$PKG/stratacache_core_bg.wasm" | wc -c)
# What `import "stratacache"` loads (the tools entry and its module aside).
main_js=$(ls "$PKG"/*.js | grep -v '/stratacache_tools.js$\|/tools-')
js_bytes=$(cat $main_js | wc -c)
js_gz=$(cat $main_js | gzip -9 -c | wc -c)
printf 'package sizes (main entry): wasm %d bytes (%d gzipped), js %d bytes (%d gzipped), total gzipped %d bytes\n' \
  "$wasm_bytes" "$wasm_gz" "$js_bytes" "$js_gz" $((wasm_gz + js_gz))
# The issue's budget for the wasm a worker loads (printed, not enforced: the
# bytes depend on the Rust toolchain's version).
if [ "$profile" != dev ]; then
  if [ "$wasm_bytes" -le 200000 ] && [ "$wasm_gz" -le 80000 ]; then
    echo "wasm size budget (200 KB, 80 KB gzipped): within"
  else
    echo "wasm size budget (200 KB, 80 KB gzipped): OVER — see docs/wasm.md, 'Package size'" >&2
  fi
fi
