"""Plots series.json of the edge fault run (tests/reliability/edge/run.mjs).

Usage: .venv/bin/python tests/reliability/edge/plot.py target/reliability/edge [out.png]
Three panels over time, the fault windows shaded: hit ratio (local tier or
KV, no origin call) and the share served from KV; latency (median and max
per bin, log scale) with the tier timeout; calls that reached KV per second
by the adapter's mode, and origin calls per second.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"reject": "#d62728", "hang": "#9467bd", "slow": "#ff7f0e"}


def main() -> None:
    src = Path(sys.argv[1])
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else src / "edge-faults.png"
    data = json.loads((src / "series.json").read_text())
    meta = data["meta"]
    for group, parts in data["series"].items():
        rows = parts["bins"]
        rates = parts["rates"]
        marks = sorted((m for m in data["marks"] if m["group"] == group), key=lambda m: m["t"])
        t = [r["t"] for r in rows]
        fig, axes = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
        for ax in axes:
            for a, b in zip(marks, marks[1:]):
                if a["mode"] in COLORS:
                    ax.axvspan(a["t"] / 1000, b["t"] / 1000, color=COLORS[a["mode"]], alpha=0.13)
            ax.grid(alpha=0.3)
        for a, b in zip(marks, marks[1:]):
            if a["mode"] in COLORS:
                axes[0].text((a["t"] + b["t"]) / 2000, 1.02, f"KV {a['mode']}", ha="center", fontsize=9)
        ax = axes[0]
        ax.plot(t, [r["hitRatio"] for r in rows], label="hit ratio (local or KV)", color="#1f77b4")
        ax.plot(t, [r["kvShare"] for r in rows], label="served from KV", color="#2ca02c")
        ax.set_ylim(-0.02, 1.1)
        ax.set_ylabel("share of requests")
        ax.legend(loc="lower left", fontsize=8)
        ax.set_title(
            f"Edge worker (workerd) under KV faults: {meta['courses']} courses, "
            f"{meta['concurrency']} clients, {meta['isolates']} isolates",
            fontsize=10,
        )
        ax = axes[1]
        ax.plot(t, [r["p50"] for r in rows], label="median", color="#1f77b4")
        ax.plot(t, [r["max"] for r in rows], label="max", color="#d62728")
        ax.axhline(meta["tierTimeoutMs"], color="grey", ls="--", lw=1, label="tier timeout")
        ax.set_yscale("log")
        ax.set_ylabel("latency per bin (ms)")
        ax.legend(loc="upper left", fontsize=8)
        ax = axes[2]
        rt = [x for r in rates for x in (r["t0"], r["t1"])]
        for mode, color in (("pass", "#2ca02c"), *COLORS.items()):
            ys = [r["kvCalls"][mode] for r in rates for _ in (0, 1)]
            if any(ys):
                ax.plot(rt, ys, label=f"KV calls/s ({mode})", color=color)
        ys = [r["originCalls"] for r in rates for _ in (0, 1)]
        ax.plot(rt, ys, label="origin calls/s", color="black", lw=1, alpha=0.6)
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylabel("calls per second")
        ax.set_xlabel("time (s)")
        ax.legend(loc="upper left", fontsize=8, ncol=3)
        fig.tight_layout()
        target = out if len(data["series"]) == 1 else out.with_name(f"{out.stem}-{group}{out.suffix}")
        fig.savefig(target, dpi=110)
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
