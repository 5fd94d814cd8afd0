"""Tables and plots of a soak run (scripts/soak.sh): reads the JSON each
driver wrote in DIR, prints the tables, writes DIR/summary.json and the plots
DIR/soak-local.png (RSS over ops, one panel per host; RSS above each
process's baseline: after its imports and the empty cache) and
DIR/soak-request.png (RSS over requests).

Usage: python soak_report.py DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

MIB = 2**20
HOSTS = ("rust", "python", "js")


def load(directory: Path) -> tuple[list[dict], list[dict]]:
    local, request = [], []
    for path in sorted(directory.glob("*.json")):
        if path.name == "summary.json":
            continue
        try:
            data = json.loads(path.read_text())
        except ValueError:
            print(f"skipped {path.name}: not a finished run's JSON", file=sys.stderr)
            continue
        (request if data["contender"] == "request-cache" else local).append(data)
    order = {h: i for i, h in enumerate(HOSTS)}
    local.sort(key=lambda d: (order.get(d["host"], 9), d["contender"] != "stratacache", d["contender"]))
    request.sort(key=lambda d: order.get(d["host"], 9))
    return local, request


def mib(n: float) -> str:
    return f"{n / MIB:,.1f}"


def local_table(local: list[dict]) -> list[str]:
    tc_speed = {d["host"]: d["ops_per_s"] for d in local if d["contender"] == "stratacache"}
    head = (
        f"{'host':<7}{'contender':<16}{'ops':>12}{'entries':>9}{'bounds':>17}{'peak RSS':>10}{'final RSS':>10}"
        f"{'peak-base':>10}{'growth':>8}{'peak gr.':>9}{'ops/s':>10}{'vs tc':>7}"
    )
    lines = [head, "-" * len(head)]
    for d in local:
        bounds = {
            "django-locmem": f"{d['max_entries']:,} ent",
            "cachetools-ttl": f"{d['max_bytes'] // MIB} MiB",
        }.get(d["contender"], f"{d['max_entries'] // 1000}k, {d['max_bytes'] // MIB} MiB")
        ratio = d["ops_per_s"] / tc_speed[d["host"]] if d["host"] in tc_speed else float("nan")
        lines.append(
            f"{d['host']:<7}{d['contender']:<16}{d['ops']:>12,}{d['final_entries']:>9,}{bounds:>17}"
            f"{mib(d['peak_rss']):>10}{mib(d['final_rss']):>10}{mib(d['peak_rss'] - d['baseline_rss']):>10}"
            f"{mib(d['growth_after_warm']):>8}{mib(d['peak_growth_after_warm']):>9}"
            f"{d['ops_per_s']:>10,.0f}{ratio:>7.2f}"
        )
    lines.append(
        "RSS in MiB. peak-base: peak RSS minus RSS after imports and the empty cache (compare with the 32 MiB"
        " weight bound); growth: final minus RSS at the end of warm-up (first fifth of the ops); peak gr.:"
        " highest RSS after warm-up minus RSS at its end. vs tc: ops/s over stratacache's in the same host."
    )
    for d in (d for d in local if "final_live_heap" in d):
        lines.append("")
        lines.append(
            f"{d['host']} {d['contender']}, live heap (counting allocator: bytes allocated and not freed):"
            f" at warm-up {mib(d['warm_live_heap'])}, peak {mib(d['peak_live_heap'])},"
            f" final {mib(d['final_live_heap'])} MiB"
        )
    retained = [d for d in local if "final_array_buffers" in d]
    if retained:
        lines.append("")
        lines.append(
            "JS, retained after a full GC (process.memoryUsage): JS heap used and ArrayBuffer bytes (the values)"
        )
        head2 = (
            f"{'contender':<16}{'peak heap':>10}{'final heap':>11}{'peak buffers':>13}{'final buffers':>14}"
        )
        lines += [head2, "-" * len(head2)]
        for d in retained:
            lines.append(
                f"{d['contender']:<16}{mib(d['peak_heap_used']):>10}{mib(d['final_heap_used']):>11}"
                f"{mib(d['peak_array_buffers']):>13}{mib(d['final_array_buffers']):>14}"
            )
    digests = {d["digest"] for d in local}
    lines.append(
        "op stream digest: "
        + (f"{digests.pop()} (the same in every host)" if len(digests) == 1 else f"DIFFERS {sorted(digests)}")
    )
    return lines


def request_table(request: list[dict]) -> list[str]:
    head = (
        f"{'host':<7}{'requests':>11}{'workers':>18}{'req/s':>9}{'seen other':>11}{'survived':>9}"
        f"{'peak RSS':>10}{'final RSS':>10}{'growth':>8}{'peak gr.':>9}"
    )
    lines = [head, "-" * len(head)]
    for d in request:
        workers = f"{d['threads']} thr + {d['tasks']} tasks" if "threads" in d else f"{d['tasks']} tasks"
        lines.append(
            f"{d['host']:<7}{d['requests']:>11,}{workers:>18}{d['requests_per_s']:>9,.0f}{d['sightings']:>11}"
            f"{d['survivors']:>9}{mib(d['peak_rss']):>10}{mib(d['final_rss']):>10}"
            f"{mib(d['growth_after_warm']):>8}{mib(d['peak_growth_after_warm']):>9}"
        )
    lines.append(
        "seen other: reads that returned another request's value; survived: values or scopes alive after"
        " their request ended (JS: after 2 GCs). RSS in MiB; growth as above (warm-up: first fifth)."
    )
    return lines


def plot(local: list[dict], request: list[dict], directory: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    hosts = [h for h in HOSTS if any(d["host"] == h for d in local)]
    if hosts:
        fig, axes = plt.subplots(1, len(hosts), figsize=(5.2 * len(hosts), 4.2), squeeze=False)
        for ax, host in zip(axes[0], hosts):
            for d in (d for d in local if d["host"] == host):
                xs = [s[0] / 1e6 for s in d["samples"]]
                ys = [(s[1] - d["baseline_rss"]) / MIB for s in d["samples"]]
                (line,) = ax.plot(xs, ys, label=d["contender"], linewidth=1.4)
                if len(d["samples"][0]) > 4:  # JS: heap used + ArrayBuffer bytes after a full GC
                    kept = [(s[3] + s[4]) / MIB for s in d["samples"]]
                    label = f"{d['contender']}: JS heap + buffers (absolute)"
                elif len(d["samples"][0]) > 3:  # Rust: live heap from the counting allocator
                    kept = [s[3] / MIB for s in d["samples"]]
                    label = f"{d['contender']}: live heap (absolute)"
                else:
                    kept = None
                if kept:
                    ax.plot(xs, kept, color=line.get_color(), linestyle=":", linewidth=1.2, label=label)
            bound = next(d["max_bytes"] for d in local if d["host"] == host) / MIB
            ax.axhline(
                bound, color="gray", linestyle="--", linewidth=0.9, label=f"weight bound ({bound:.0f} MiB)"
            )
            ax.set_title(f"{host}: LocalCache soak")
            ax.set_xlabel("operations (millions)")
            ax.set_ylabel("RSS above baseline (MiB)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        path = directory / "soak-local.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    if request:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for d in request:
            ax.plot(
                [s[0] / 1e3 for s in d["samples"]], [s[1] / MIB for s in d["samples"]], label=f"{d['host']}"
            )
        ax.set_title("RequestCache soak: RSS over requests")
        ax.set_xlabel("requests (thousands)")
        ax.set_ylabel("RSS (MiB)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = directory / "soak-request.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        raise SystemExit(__doc__)
    directory = Path(argv[0])
    local, request = load(directory)
    lines = []
    if local:
        lines += ["LocalCache soak", *local_table(local), ""]
    if request:
        lines += ["RequestCache soak", *request_table(request), ""]
    lines.append(f"load average at report time: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("\n".join(lines))
    strip = [{k: v for k, v in d.items() if k != "samples"} for d in local + request]
    (directory / "summary.json").write_text(json.dumps({"runs": strip, "table": lines}, indent=2))
    for path in plot(local, request, directory):
        print(f"plot: {path}")
    # A request cache seen from another request, or surviving its request, fails the soak.
    bad = [d for d in request if d.get("sightings") or d.get("survivors")]
    for d in bad:
        print(
            f"FAIL {d['host']} RequestCache: {d['sightings']} cross-request sightings, "
            f"{d['survivors']} survivors:",
            d["sighting_examples"] + d["survivor_examples"],
        )
    if bad:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
