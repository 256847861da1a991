#!/usr/bin/env python3
"""Plots convergence time against services per member, one line per controller and
member count, from the CSV that tests/scale.rs appends to (make bench-scale).

usage: plot_scale.py target/bench-scale.csv docs/scale.png
"""
import csv
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    series = defaultdict(list)
    with open(src) as f:
        for row in csv.DictReader(f):
            key = f"{row['controller']}, {row['members']} members"
            series[key].append((int(row["services"]), float(row["converge_s"])))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, points in sorted(series.items()):
        points.sort()
        xs, ys = zip(*points)
        ax.plot(xs, ys, marker="o", label=key)
    ax.set_xlabel("services per member (one ServiceDNSRecord each)")
    ax.set_ylabel("time to converge (s)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("Convergence from a controller start (make bench-scale)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
