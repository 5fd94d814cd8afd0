"""Parses the benchmark logs into docs/reports/demo/benchmarks.json (--run/--parse),
then draws one plot per benchmark and rewrites the generated tables of
docs/reports/benchmarks.md (between <!-- figures:NAME --> and <!-- /figures -->)."""

import json
import platform
import re
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "stratacache"  # the same figures give the same files
import matplotlib.pyplot as plt  # noqa: E402

mode, logs = sys.argv[1], Path(sys.argv[2])
FIGURES = Path("docs/reports/demo/benchmarks.json")
PAGE = Path("docs/reports/benchmarks.md")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
OURS, PEER = "#2b6cd9", "#d9822b"


def read_log(name):
    path = logs / f"{name}.txt"
    if not path.exists():
        raise SystemExit(f"benchmarks.sh: no log {path}: run `bash scripts/benchmarks.sh --run`")
    return ANSI.sub("", path.read_text(errors="replace"))


def loads(text):
    """The 1-minute load average at the start and at the end of a log."""
    found = re.findall(r"load average: ([\d.]+),", text)
    return {"start": float(found[0]), "end": float(found[-1])} if found else None


def need(match, what, name):
    if not match:
        raise SystemExit(f"benchmarks.sh: could not find {what} in {logs / name}.txt; its format changed?")
    return match


def parse_local_cache(text):
    rows = []
    op = None
    for line in text.splitlines():
        m = re.match(r"^(get hit|set evict)?\s+(stratacache|lru|quick_cache|moka)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", line)
        if m:
            op = m.group(1) or op
            rows.append({"group": op, "name": m.group(2), "criterion_ns": float(m.group(3)),
                         "criterion_ratio": float(m.group(4)), "interleaved_ns": float(m.group(5)),
                         "ratio": float(m.group(6))})
    need(rows, "the ns-per-op table", "local_cache")
    return {"rows": rows}


def parse_envelope(text):
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(memcpy.*?|decode.*?)\s+([\d.]+)ms\s+([\d.]+)\s+(\d+)%\s*$", line)
        if m:
            rows.append({"name": m.group(1).strip(), "median_ms": float(m.group(2)),
                         "gib_s": float(m.group(3)), "ratio": int(m.group(4)) / 100})
    need(rows, "the decode table", "envelope")
    m = need(re.search(r"interleaved, fastest of (\d+): memcpy ([\d.]+) GiB/s, decode\+copy ([\d.]+) GiB/s = (\d+)%", text),
             "the interleaved line", "envelope")
    return {"rows": rows, "interleaved": {"rounds": int(m.group(1)), "memcpy_gib_s": float(m.group(2)),
                                          "decode_copy_gib_s": float(m.group(3)), "ratio": int(m.group(4)) / 100}}


def parse_tiered(text):
    m = need(re.search(r"tiered/read_100_local_hits\s+time:\s+\[([\d.]+) µs ([\d.]+) µs ([\d.]+) µs\]", text),
             "criterion's estimate", "tiered")
    own = need(re.search(r"([\d.]+)µs per read \(target < ([\d.]+) µs\)", text), "the bench's own line", "tiered")
    return {"criterion_us": [float(m.group(i)) for i in (1, 2, 3)], "best_us": float(own.group(1)),
            "target_us": float(own.group(2))}


def to_us(value, unit):
    return float(value) * {"ns": 1e-3, "µs": 1.0, "ms": 1e3}[unit]


def parse_python(text):
    rows = []
    for line in text.splitlines():
        m = re.match(r"^(.+?)\s{2,}([\d.]+) (ns|µs|ms)\s{2,}(.+?)\s{2,}([\d.]+) (ns|µs|ms)\s+([\d.]+)x\s+(.*)$", line)
        if m:
            rows.append({"name": m.group(1).strip(), "ours_us": to_us(m.group(2), m.group(3)),
                         "peer": m.group(4).strip(), "peer_us": to_us(m.group(5), m.group(6)),
                         "ratio": float(m.group(7)), "target": m.group(8).strip()})
    need(rows, "the results table", "python")
    return {"rows": rows}


def parse_wasm(text):
    rows = []
    for line in text.splitlines():
        cells = [c.strip().strip("'") for c in line.split("│")]
        if len(cells) >= 8 and cells[1].isdigit():
            rows.append({"name": cells[2], "lru_ns": float(cells[3]), "ours_ns": float(cells[4]),
                         "ratio": float(cells[5]), "median_ratio": float(cells[6]), "turns": int(cells[7])})
    need(rows, "the LocalCache table", "wasm")
    size = need(re.search(r"package sizes(?: \(main entry\))?: wasm (\d+) bytes \((\d+) gzipped\), js (\d+) bytes \((\d+) gzipped\)", text),
                "the package sizes", "wasm")
    node = need(re.search(r"compile \+ instantiate \+ first call: ([\d.]+) ms", text), "Node's start-up", "wasm")
    workerd = re.search(r"median < (\d+) ms, max < (\d+) ms", text)
    return {"rows": rows,
            "size": {"wasm": int(size.group(1)), "wasm_gz": int(size.group(2)), "js": int(size.group(3)),
                     "js_gz": int(size.group(4))},
            "startup_ms": {"node": float(node.group(1)),
                           "workerd_median_under": int(workerd.group(1)) if workerd else None}}


PARSERS = {"local_cache": parse_local_cache, "envelope": parse_envelope, "tiered": parse_tiered,
           "python": parse_python, "wasm": parse_wasm}


def machine():
    cpu = "unknown CPU"
    try:
        info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = re.search(r"Model name:\s+(.*)", info)
        count = re.search(r"^CPU\(s\):\s+(\d+)", info, re.M)
        cpu = f"{count.group(1) if count else '?'} vCPU {name.group(1).strip() if name else ''}".strip()
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 1048576:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.split(" (")[0]
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}{mem}, Linux {platform.release()}, {rustc}, Python {platform.python_version()}, Node {node}"


def commit():
    """The commit the logs say they ran at (the first log's), else HEAD's."""
    for name in PARSERS:
        m = re.search(r"^# commit (.+)$", read_log(name), re.M)
        if m:
            return m.group(1).strip()
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()


if mode in ("run", "parse"):
    Path("docs/reports/demo").mkdir(parents=True, exist_ok=True)
    figures = {"machine": machine(),
               "commit": commit(),
               "date": subprocess.run(["date", "-u", "+%Y-%m-%d"], capture_output=True, text=True).stdout.strip(),
               "benches": {}}
    for name, parse in PARSERS.items():
        text = read_log(name)
        figures["benches"][name] = {**parse(text), "load": loads(text)}
    FIGURES.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    print(f"figures -> {FIGURES}")
figures = json.loads(FIGURES.read_text())
B = figures["benches"]


def save(fig, name, tight=True):
    if tight:
        fig.tight_layout()
    else:
        fig.tight_layout(rect=(0, 0.08, 1, 1))
    for ext in ("png", "svg"):
        fig.savefig(f"docs/reports/demo/bench-{name}.{ext}", dpi=110, metadata={"Date": None} if ext == "svg" else {})
    plt.close(fig)
    print(f"plot -> docs/reports/demo/bench-{name}.png|svg")


def bar_labels(ax, bars, fmt):
    for bar in bars:
        w = bar.get_width()
        ax.annotate(fmt(w), (w, bar.get_y() + bar.get_height() / 2), xytext=(3, 0),
                    textcoords="offset points", va="center", fontsize=8)


# local_cache: ns/op of each contender relative to lru, both columns.
rows = B["local_cache"]["rows"]
fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharex=True)
for ax, op in zip(axes, ("get hit", "set evict")):
    rs = [r for r in rows if r["group"] == op]
    ys = range(len(rs))
    b1 = ax.barh([y + 0.2 for y in ys], [r["ratio"] for r in rs], 0.4, color=OURS, label="interleaved (median of per-round ratios)")
    b2 = ax.barh([y - 0.2 for y in ys], [r["criterion_ratio"] for r in rs], 0.4, color="#aac4ee", label="criterion (one after another)")
    bar_labels(ax, b1, lambda w: f"{w:.2f}")
    bar_labels(ax, b2, lambda w: f"{w:.2f}")
    ax.set_yticks(list(ys), [r["name"] for r in rs])
    ax.invert_yaxis()
    ax.axvline(1.0, color="k", lw=0.8)
    ax.set_xscale("log")
    ax.set_title(f"{op}: time per op / lru's (lower is faster)")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=2)
fig.subplots_adjust(bottom=0.2)
save(fig, "local_cache", tight=False)

# envelope: decode throughput next to memcpy's.
env = B["envelope"]
rs = [r for r in env["rows"] if "borrowed" not in r["name"]]
fig, ax = plt.subplots(figsize=(9, 3.4))
bars = ax.barh(range(len(rs)), [r["gib_s"] for r in rs], color=[PEER if r["name"].startswith("memcpy") else OURS for r in rs])
bar_labels(ax, bars, lambda w: f"{w:.1f} GiB/s")
ax.set_yticks(range(len(rs)), [r["name"] for r in rs])
ax.invert_yaxis()
ax.set_xlabel("GiB/s of payload (5 MiB), criterion median")
ax.set_title("Envelope decode vs memcpy (target: decode+copy >= 50% of memcpy)")
ax.set_xlim(right=max(r["gib_s"] for r in rs) * 1.25)
save(fig, "envelope")

# tiered: one read of 100 local hits against the 5 µs target.
t = B["tiered"]
fig, ax = plt.subplots(figsize=(7, 2.2))
lo, med, hi = t["criterion_us"]
ax.barh([1, 0], [med, t["best_us"]], color=OURS)
ax.annotate(f"{med:.2f} µs ({lo:.2f}-{hi:.2f})", (med, 1), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
ax.annotate(f"{t['best_us']:.2f} µs", (t["best_us"], 0), xytext=(4, 0), textcoords="offset points", va="center", fontsize=8)
ax.axvline(t["target_us"], color="#c00", lw=1.2, ls="--", label=f"target {t['target_us']:g} µs")
ax.set_yticks([1, 0], ["criterion median", "bench's own figure"])
ax.set_xlabel("µs per tiered read of 100 keys, all local-tier hits")
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.45))
ax.set_xlim(right=max(hi, t["target_us"]) * 1.45)
save(fig, "tiered")

# Python: how many times faster than the peer (log).
rs = B["python"]["rows"]
fig, ax = plt.subplots(figsize=(10, 3.6))
labels = [f"{r['name']}\nvs {r['peer']}" for r in rs]
speedups = [r["peer_us"] / r["ours_us"] for r in rs]
bars = ax.barh(range(len(rs)), speedups, color=[OURS if v >= 1 else PEER for v in speedups])
bar_labels(ax, bars, lambda w: f"{w:.2f}x")
ax.set_yticks(range(len(rs)), labels, fontsize=7)
ax.invert_yaxis()
ax.set_xscale("log")
ax.axvline(1.0, color="k", lw=0.8)
ax.set_xlabel("peer time / stratacache time (log scale; > 1: stratacache faster)")
ax.set_title("Python package vs its peers")
save(fig, "python")

# JS: lru-cache time / stratacache time.
w = B["wasm"]
rs = w["rows"]
fig, ax = plt.subplots(figsize=(9, 2.8))
ys = range(len(rs))
b1 = ax.barh([y - 0.2 for y in ys], [r["ratio"] for r in rs], 0.4, color=OURS, label="ratio of best turns")
b2 = ax.barh([y + 0.2 for y in ys], [r["median_ratio"] for r in rs], 0.4, color="#aac4ee", label="median of interleaved turns")
bar_labels(ax, b1, lambda v: f"{v:.2f}")
bar_labels(ax, b2, lambda v: f"{v:.2f}")
ax.set_yticks(list(ys), [r["name"] for r in rs])
ax.invert_yaxis()
ax.axvline(1.0, color="k", lw=0.8)
ax.set_xlim(0, max(max(r["ratio"], r["median_ratio"]) for r in rs) * 1.25)
ax.set_xlabel("lru-cache time / stratacache time (>= 1: stratacache at least as fast)")
ax.set_title("JS LocalCache vs npm lru-cache (max 10,000 entries)")
ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
save(fig, "wasm")


# The tables of the page.
def load_text(name):
    ld = B[name].get("load")
    return f"Load (1-min average) {ld['start']:.2f} at the start, {ld['end']:.2f} at the end" if ld else "Load not recorded"


def fmt_time(us):
    if us < 1:
        return f"{us * 1000:.1f} ns"
    if us < 1000:
        return f"{us:.1f} µs"
    return f"{us / 1000:.1f} ms"


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


tables = {
    "local_cache": table(
        ["operation", "contender", "ns/op (interleaved)", "vs lru", "ns/op (criterion)", "vs lru"],
        [[r["group"], r["name"], f"{r['interleaved_ns']:.1f}", f"**{r['ratio']:.2f}**", f"{r['criterion_ns']:.1f}",
          f"{r['criterion_ratio']:.2f}"] for r in B["local_cache"]["rows"]],
    ) + f"\n\n{load_text('local_cache')}.",
    "envelope": table(
        ["decode of a 5 MiB payload", "median", "GiB/s", "vs memcpy"],
        [[r["name"], f"{r['median_ms']:.3f} ms", f"{r['gib_s']:.2f}", f"**{r['ratio'] * 100:.0f}%**"] for r in B["envelope"]["rows"]],
    ) + (f"\n\nInterleaved, fastest of {env['interleaved']['rounds']} rounds: memcpy {env['interleaved']['memcpy_gib_s']:.1f} GiB/s, "
         f"decode+copy {env['interleaved']['decode_copy_gib_s']:.1f} GiB/s = **{env['interleaved']['ratio'] * 100:.0f}%** of memcpy. "
         f"{load_text('envelope')}."),
    "tiered": table(
        ["measure", "µs per read of 100 local hits", "target"],
        [["criterion (low, median, high)", " / ".join(f"{v:.2f}" for v in t["criterion_us"]), f"< {t['target_us']:g}"],
         ["the bench's own figure", f"**{t['best_us']:.2f}**", f"< {t['target_us']:g}"]],
    ) + f"\n\n{load_text('tiered')}.",
    "python": table(
        ["what", "stratacache", "peer", "peer time", "ratio", "target"],
        [[r["name"], fmt_time(r["ours_us"]), r["peer"], fmt_time(r["peer_us"]), f"**{r['ratio']:.2f}x**", r["target"]]
         for r in B["python"]["rows"]],
    ) + f"\n\n{load_text('python')}.",
    "wasm": table(
        ["case", "lru-cache ns/op", "stratacache ns/op", "ratio of bests", "median ratio", "turns"],
        [[r["name"], f"{r['lru_ns']:.1f}", f"{r['ours_ns']:.1f}", f"**{r['ratio']:.2f}**", f"{r['median_ratio']:.2f}", r["turns"]]
         for r in w["rows"]],
    ) + (f"\n\nPackage: wasm {w['size']['wasm']:,} bytes ({w['size']['wasm_gz']:,} gzipped), JS {w['size']['js']:,} bytes "
         f"({w['size']['js_gz']:,} gzipped). Start-up (compile, instantiate, first call): {w['startup_ms']['node']:.2f} ms in Node"
         + (f", under {w['startup_ms']['workerd_median_under']} ms (median) inside workerd" if w["startup_ms"]["workerd_median_under"] else "")
         + f". {load_text('wasm')}."),
    "machine": f"{figures['machine']}; commit `{figures['commit']}`, {figures['date']}.",
}

page = PAGE.read_text()
for name, text in tables.items():
    pattern = re.compile(rf"(<!-- figures:{name} -->\n).*?(<!-- /figures -->)", re.S)
    if not pattern.search(page):
        raise SystemExit(f"benchmarks.sh: {PAGE} has no <!-- figures:{name} --> ... <!-- /figures --> block")
    page = pattern.sub(lambda m, text=text: m.group(1) + text + "\n" + m.group(2), page)
PAGE.write_text(page)
print(f"tables -> {PAGE}")
