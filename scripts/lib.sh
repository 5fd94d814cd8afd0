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
