"""Plots the hit-ratio simulator's CSV: one panel per trace, hit ratio by size."""

import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

POLICIES = ["lru", "stratacache", "quick_cache", "moka", "belady"]


def main(csv_path: str, png_path: str) -> None:
    rows = defaultdict(list)
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            rows[row["trace"]].append(row)
    traces = list(rows)
    cols = 5
    nrows = (len(traces) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    for ax, trace in zip(axes.flat, traces):
        sizes = [int(r["size_pct"]) for r in rows[trace]]
        for policy in POLICIES:
            values = [r[policy] for r in rows[trace]]
            if all(values):
                ax.plot(sizes, [float(v) for v in values], marker="o", label=policy)
        ax.set_title(trace, fontsize=10)
        ax.set_xlabel("cache size, % of distinct keys/bytes")
        ax.set_ylabel("hit ratio %")
        ax.set_xticks(sizes)
    for ax in list(axes.flat)[len(traces) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png_path, dpi=72)
    print(f"wrote {png_path}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
