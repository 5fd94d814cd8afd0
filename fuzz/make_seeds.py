"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/<name>) from the
golden vectors in tests/vectors/: a few dozen named inputs that start every
target at the formats' real shapes (valid, signed, chunked, and each refused
case). The growing corpus of long runs (fuzz/corpus/, not in git) lives
outside the tree.

Usage: python3 fuzz/make_seeds.py          (rewrites fuzz/seeds/)
       python3 fuzz/make_seeds.py --check  (fails if fuzz/seeds/ is stale)

Example: ``fuzz/seeds/envelope_decode/valid-raw_unsigned`` holds the bytes of
the ``raw_unsigned`` envelope vector.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"
SEEDS = ROOT / "fuzz" / "seeds"

# `arbitrary` picks an enum variant from a leading u32: all ones selects the
# last variant (key_decode's `Input::Parse`, whose bytes are the rest).
LAST_VARIANT = b"\xff\xff\xff\xff"


def seeds() -> dict[str, dict[str, bytes]]:
    """Every seed: {target: {file name: bytes}}."""
    keys = json.loads((VECTORS / "keys.json").read_text())
    envelopes = json.loads((VECTORS / "envelopes.json").read_text())
    out: dict[str, dict[str, bytes]] = {
        t: {} for t in ("envelope_decode", "manifest_decode", "key_build", "key_decode", "tiered_read")
    }

    for v in envelopes["valid"]:
        data = bytes.fromhex(v["envelope_hex"])
        out["envelope_decode"][f"valid-{v['name']}"] = data
        out["tiered_read"][f"envelope-{v['name']}"] = data
    for v in envelopes["invalid"]:
        out["envelope_decode"][f"invalid-{v['name']}"] = bytes.fromhex(v["envelope_hex"])
    for v in envelopes["manifests"]:
        manifest = bytes.fromhex(v["manifest_hex"])
        # wrap = false (first byte even), then the manifest envelope's bytes.
        out["manifest_decode"][f"manifest-{v['name']}"] = b"\x00" + manifest
        out["envelope_decode"][f"manifest-{v['name']}"] = manifest
        out["tiered_read"][f"manifest-{v['name']}"] = manifest
        for i, chunk in enumerate(v["chunks"][:2]):
            out["manifest_decode"][f"chunk{i}-{v['name']}"] = b"\x01" + bytes.fromhex(chunk["hex"])[:64]

    for v in keys["vectors"]:
        if "key" not in v:
            continue
        key = v["key"].encode()
        out["key_decode"][f"parse-{v['name']}"] = LAST_VARIANT + key
        out["key_build"][f"key-{v['name']}"] = key
    for v in keys["safe_keys"]:
        if "raw" in v:
            out["key_build"][f"raw-{v['name']}"] = v["raw"].encode()
    # A few dozen per target is enough to start from; keep the list stable.
    for target, files in out.items():
        out[target] = dict(sorted(files.items())[:16])
    return out


def write(dest: Path) -> None:
    """Writes every seed under `dest` (one folder per target)."""
    for target, files in seeds().items():
        folder = dest / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)


def same(a: Path, b: Path) -> bool:
    """Whether two seed folders hold the same names and bytes."""
    files = lambda d: {p.relative_to(d): p.read_bytes() for p in d.rglob("*") if p.is_file()}  # noqa: E731
    return files(a) == files(b)


def main() -> int:
    if "--check" in sys.argv[1:]:
        with tempfile.TemporaryDirectory() as tmp:
            write(Path(tmp))
            if not SEEDS.is_dir() or not same(Path(tmp), SEEDS):
                print("fuzz/seeds is stale: run python3 fuzz/make_seeds.py", file=sys.stderr)
                return 1
        return 0
    shutil.rmtree(SEEDS, ignore_errors=True)
    write(SEEDS)
    count = sum(1 for p in SEEDS.rglob("*") if p.is_file())
    print(f"wrote {count} seeds into {SEEDS.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
