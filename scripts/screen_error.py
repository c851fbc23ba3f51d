"""The "screen" preset's SAMS error against "paper" on the reference records (issue H).

    python scripts/screen_error.py

Pairs every committed screen task (data/screen/batch_*.jsonl.gz) with the paper task of the same
record (data/reference_paper.jsonl.gz) and prints |ΔSAMS| (median, p90, max, by element), the
bias, the rank correlation and the CPU cost of both, read from the task documents themselves.
"""

import glob
import gzip
import json
from collections import defaultdict

import numpy as np
from scipy.stats import spearmanr

paper = {
    json.loads(l)["record_key"]: json.loads(l)
    for l in gzip.open("data/reference_paper.jsonl.gz", "rt")
}
rows, failed = [], 0
for path in sorted(glob.glob("data/screen/batch_*.jsonl.gz")):
    for line in gzip.open(path, "rt"):
        t = json.loads(line)
        if t["record_key"] not in paper:
            continue
        if t["state"] != "successful":
            failed += 1
            continue
        p = paper[t["record_key"]]
        rows.append((t["element"], t["sams"], p["sams"], t["cpu_s"], p["cpu_s"], t["record_key"]))
s = np.array([r[1] for r in rows])
pp = np.array([r[2] for r in rows])
cs = np.array([r[3] for r in rows])
cp = np.array([r[4] for r in rows])
d = np.abs(s - pp)
print(f"{len(rows)} paired reference records ({failed} screen failures)")
print(
    f"|dSAMS| median {np.median(d):.4f}, p90 {np.percentile(d, 90):.4f}, max {d.max():.4f}; bias {np.mean(s - pp):+.4f}"
)
print(f"Pearson {np.corrcoef(s, pp)[0, 1]:.3f}, Spearman {spearmanr(s, pp).statistic:.3f}")
print(
    f"CPU-s screen median {np.median(cs):.1f} (max {cs.max():.0f}), paper median {np.median(cp):.0f}; per-record paper/screen median {np.median(cp / cs):.1f}"
)
by = defaultdict(list)
for r, x in zip(rows, d):
    by[r[0]].append(x)
print("by element (n, median, p90, max):")
for e in sorted(by):
    v = np.array(by[e])
    print(f"  {e}: {len(v)}, {np.median(v):.4f}, {np.percentile(v, 90):.4f}, {v.max():.3f}")
worst = sorted(zip(d, rows), key=lambda x: -x[0])[:5]
print(
    "largest:", "; ".join(f"{r[5].split(':')[1]}:{r[0]} {r[2]:.3f}->{r[1]:.3f}" for _, r in worst)
)
