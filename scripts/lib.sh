# Shared helpers for the scripts in this folder. Source it; do not run it.
# Every "ensure_*" installs what is missing, so the scripts work on a fresh
# machine with only rustup, Python and Node present.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

ensure_rust() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup (https://rustup.rs)" >&2; exit 1; }
  local have
  have="$(rustup component list --installed 2>/dev/null || true)"
  grep -q '^clippy' <<<"$have" || rustup component add clippy
  grep -q '^rustfmt' <<<"$have" || rustup component add rustfmt
  rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
}

# apt_install PKG...: installs Debian packages that are missing.
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# choose_port_base [FIRST]: exports STRATACACHE_PORT_BASE (unless already set)
# as the first base from FIRST (default 21300) up, step 10, whose four ports
# are all free, so a concurrent run elsewhere on the machine neither shares
# nor stops our servers.
choose_port_base() {
  [ -n "${STRATACACHE_PORT_BASE:-}" ] && return 0
  local first="${1:-21300}" base p busy
  for base in $(seq "$first" 10 $((first + 690))); do
    busy=0
    for p in $base $((base + 1)) $((base + 2)) $((base + 3)); do
      if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then busy=1; break; fi
    done
    if [ "$busy" = 0 ]; then export STRATACACHE_PORT_BASE=$base; return 0; fi
  done
}

# The project's one Python venv (.venv/ of the checkout).
VENV="${VENV:-$REPO_ROOT/.venv}"

# ensure_venv GROUP...: creates .venv when missing and installs the named
# dependency groups of bindings-python/pyproject.toml ([dependency-groups]:
# build, test, servers, bench, reliability, examples, packaging). A group is
# reinstalled only when pyproject.toml changed since it was installed.
ensure_venv() {
  command -v python3 >/dev/null || { echo "python3 not found: install Python 3.9+" >&2; exit 1; }
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  local pyproject="$REPO_ROOT/bindings-python/pyproject.toml" sum group todo=()
  sum="$(sha256sum "$pyproject" | cut -c1-16)"
  for group in "$@"; do
    [ "$(cat "$VENV/.stratacache-group-$group" 2>/dev/null)" = "$sum" ] || todo+=("$group")
  done
  [ ${#todo[@]} -eq 0 ] && return 0
  step "Python packages: ${todo[*]} (pip install --group, into .venv)"
  # `--group` needs pip 25.1.
  "$VENV/bin/python" -m pip install -q --upgrade "pip>=25.1"
  local args=()
  for group in "${todo[@]}"; do args+=(--group "$pyproject:$group"); done
  "$VENV/bin/python" -m pip install -q "${args[@]}"
  for group in "${todo[@]}"; do echo "$sum" >"$VENV/.stratacache-group-$group"; done
}

# ensure_extension [--if-stale]: builds the Python extension into .venv
# (maturin develop --release). With --if-stale, keeps a built extension that
# is newer than every source it is built from.
ensure_extension() {
  ensure_venv build
  local so newer
  so="$(ls "$REPO_ROOT"/bindings-python/python/stratacache/_core.*.so 2>/dev/null | head -1 || true)"
  if [ "${1:-}" = --if-stale ] && [ -n "$so" ] && "$VENV/bin/python" -c 'import stratacache' 2>/dev/null; then
    newer="$(cd "$REPO_ROOT" && find core/src net/src net/Cargo.toml bindings-python/src bindings-python/Cargo.toml bindings-python/pyproject.toml \
      core/Cargo.toml Cargo.toml Cargo.lock -newer "$so" -print -quit 2>/dev/null || true)"
    if [ -z "$newer" ]; then echo "the extension ($so) is newer than its sources: not rebuilt"; return 0; fi
    echo "rebuilding: $newer is newer than $so"
  fi
  step "Build the extension (maturin develop --release)"
  ensure_rust
  rm -f "$REPO_ROOT"/bindings-python/python/stratacache/_core.*.so
  (cd "$REPO_ROOT/bindings-python" && VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" maturin develop --release -q)
}

# start_servers [SERVICE...]: starts the loopback servers (all by default;
# see scripts/servers.sh) on a port base of our own, exports their
# addresses (STRATACACHE_MEMCACHED, ...), and stops them when the calling
# script exits.
start_servers() {
  choose_port_base
  local services=("$@")
  _stratacache_stop_servers() { bash "$REPO_ROOT/scripts/servers.sh" stop "${services[@]}" || true; }
  trap _stratacache_stop_servers EXIT
  bash "$REPO_ROOT/scripts/servers.sh" start "$@"
  eval "$(bash "$REPO_ROOT/scripts/servers.sh" env)"
}
