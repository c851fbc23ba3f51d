"""A cheap preset's SAMS error against "paper" on the reference records (issue H).

    python scripts/screen_error.py [--dir screen]

Pairs every committed task of the cheap dataset (data/DIR/batch_*.jsonl.gz, default the "screen"
preset's) with the paper task of the same record (data/reference_paper.jsonl.gz) and prints
|ΔSAMS| (median, p90, max, by element), the bias, the rank correlation and the CPU cost of both,
read from the task documents themselves.
"""

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from vtc_fw.app.transfer import read_transfer_file

DATA = Path(__file__).resolve().parents[1] / "data"


def tasks(path: Path) -> list[dict]:
    """The task documents of a committed file (its structures lines left out)."""
    return [task.model_dump(mode="json") for task in read_transfer_file(path).tasks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="screen", help="the cheap dataset's folder in data/")
    arguments = parser.parse_args()
    paper = {task["record_key"]: task for task in tasks(DATA / "reference_paper.jsonl.gz")}
    pairs, failed = [], 0
    for path in sorted((DATA / arguments.dir).glob("batch_*.jsonl.gz")):
        for task in tasks(path):
            if task["record_key"] not in paper:
                continue
            if task["state"] != "successful":
                failed += 1
                continue
            pairs.append((task, paper[task["record_key"]]))
    screen = np.array([cheap["sams"] for cheap, _ in pairs])
    exact = np.array([full["sams"] for _, full in pairs])
    cpu_screen = np.array([cheap["cpu_s"] for cheap, _ in pairs])
    cpu_paper = np.array([full["cpu_s"] for _, full in pairs])
    error = np.abs(screen - exact)
    print(f"{len(pairs)} paired reference records ({failed} screen failures)")
    print(
        f"|dSAMS| median {np.median(error):.4f}, p90 {np.percentile(error, 90):.4f}, "
        f"max {error.max():.4f}; bias {np.mean(screen - exact):+.4f}"
    )
    spearman = spearmanr(screen, exact).statistic
    print(f"Pearson {np.corrcoef(screen, exact)[0, 1]:.3f}, Spearman {spearman:.3f}")
    print(
        f"CPU-s screen median {np.median(cpu_screen):.1f} (max {cpu_screen.max():.0f}), "
        f"paper median {np.median(cpu_paper):.0f}; "
        f"per-record paper/screen median {np.median(cpu_paper / cpu_screen):.1f}"
    )
    by_element = defaultdict(list)
    for (cheap, _), value in zip(pairs, error, strict=True):
        by_element[cheap["element"]].append(value)
    print("by element (n, median, p90, max):")
    for element, values in sorted(by_element.items()):
        values = np.array(values)
        print(
            f"  {element}: {len(values)}, {np.median(values):.4f}, "
            f"{np.percentile(values, 90):.4f}, {values.max():.3f}"
        )
    worst = sorted(zip(error, pairs, strict=True), key=lambda item: -item[0])[:5]
    print(
        "largest:",
        "; ".join(
            f"{cheap['record_key'].split(':')[1]}:{cheap['element']} "
            f"{full['sams']:.3f}->{cheap['sams']:.3f}"
            for _, (cheap, full) in worst
        ),
    )


if __name__ == "__main__":
    main()
