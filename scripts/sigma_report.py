"""How much of the maximum SAMS the quadrupole basis captures, from committed tasks with σ.

    python scripts/sigma_report.py [--dataset screen|paper_sigma] [--processes 2]

For every committed task with σ (data/screen/batch_*.jsonl.gz, or data/paper_sigma/ for the
"paper" records recomputed with σ; the reference "paper" tasks predate σ) it computes SAMS in
the record's quadrupole basis, SAMS_max over all orientations and A_inv
(vtc_fw.science.anisotropy), then prints the distribution of SAMS/SAMS_max, the angle between
each quadrupole axis and the nearest SAMS_max axis, and the Pearson/Spearman correlations of
SAMS_max and A_inv with SAMS. For paper_sigma it also compares each task with the reference
task of the same record (three polarizations, same preset): the SAMS they agree on and the CPU
time of six polarizations against three.
"""

import argparse
import gzip
import json
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from vtc_fw.science.anisotropy import (
    anisotropy_invariant,
    sams_in_basis,
    sams_max,
    sigma_from_components,
)

DATA = Path(__file__).resolve().parents[1] / "data"
PER_POLARIZATION = ("mkgtr", "path", "genfmt", "ff2x")
"""FEFF stages run once per polarization when the site's Green's function is shared."""


def quantities(task: dict) -> tuple[float, float, float, float]:
    """(SAMS, SAMS_max, A_inv, largest axis angle in degrees) of one task with σ."""
    energies = np.asarray(task["energies"], dtype=float)
    sigma = sigma_from_components(task["sigma"])
    basis = np.asarray(task["basis"], dtype=float)
    maximum = sams_max(energies, sigma, basis)
    cosines = np.abs(basis.T @ maximum.axes).max(axis=1).clip(max=1.0)
    return (
        sams_in_basis(energies, sigma, basis),
        maximum.value,
        anisotropy_invariant(energies, sigma),
        float(np.degrees(np.arccos(cosines)).max()),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="screen", help="folder of data/ (batch_*.jsonl.gz)")
    parser.add_argument("--processes", type=int, default=2)
    arguments = parser.parse_args()
    tasks = []
    for path in sorted((DATA / arguments.dataset).glob("batch_*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            tasks += [t for t in map(json.loads, handle) if t.get("sigma") is not None]
    with Pool(arguments.processes) as pool:
        rows = np.array(pool.map(quantities, tasks, chunksize=8))
    sams, maximum, invariant, angle = rows.T
    anisotropic = maximum > 0.01
    ratio = sams[anisotropic] / maximum[anisotropic]
    print(f"{len(rows)} {arguments.dataset} tasks with σ; {anisotropic.sum()} with SAMS_max > 0.01")
    print(
        f"SAMS/SAMS_max: median {np.median(ratio):.3f}, p10 {np.percentile(ratio, 10):.3f}, "
        f"min {ratio.min():.3f}; below 0.9: {(ratio < 0.9).sum()}, "
        f"below 0.75: {(ratio < 0.75).sum()}"
    )
    print(
        f"SAMS_max - SAMS: median {np.median(maximum - sams):.4f}, max {(maximum - sams).max():.4f}"
    )
    print(
        f"largest angle quadrupole axis ~ SAMS_max axis (anisotropic): median "
        f"{np.median(angle[anisotropic]):.1f}°, p90 {np.percentile(angle[anisotropic], 90):.1f}°"
    )
    for name, values in (("SAMS_max", maximum), ("A_inv", invariant)):
        print(
            f"{name} vs SAMS: Pearson {np.corrcoef(values, sams)[0, 1]:.3f}, "
            f"Spearman {spearmanr(values, sams).statistic:.3f}"
        )
    print(
        f"bound SAMS <= SAMS_max <= 3 A_inv holds: {bool(np.all(maximum <= 3 * invariant + 1e-9))}"
    )
    if arguments.dataset == "paper_sigma":
        against_reference(tasks)


def against_reference(tasks: list[dict]) -> None:
    """SAMS against the reference tasks of the same records, and the cost of six polarizations.

    The reference tasks ran three polarizations with an older engine (before the Green's
    function was shared), so their CPU time is not the comparison; the cost of the three extra
    polarizations is taken from each σ task's own stage timings instead: the stages run once
    per polarization (mkgtr, path, genfmt, ff2x), half of whose time three polarizations save.
    """
    with gzip.open(DATA / "reference_paper.jsonl.gz", "rt", encoding="utf-8") as handle:
        reference = {t["record_key"]: t for t in map(json.loads, handle)}
    pairs = [(t, reference[t["record_key"]]) for t in tasks if t["record_key"] in reference]
    delta = np.array([abs(new["sams"] - old["sams"]) for new, old in pairs])
    extra = np.array([six_over_three(task["stages"]) for task in tasks])
    print(
        f"against the reference tasks of the same {len(pairs)} records: |ΔSAMS| median"
        f" {np.median(delta):.2e}, max {delta.max():.2e}; six polarizations cost ×"
        f"{np.median(extra):.3f} of three (median; max ×{extra.max():.3f}), from the stage"
        f" timings; mean CPU-s {np.mean([t['cpu_s'] for t in tasks]):.0f} per σ task"
    )


def six_over_three(stages: dict[str, float]) -> float:
    """Cost of six polarizations over three, from a six-polarization run's stage seconds."""
    per_polarization = sum(stages.get(name, 0.0) for name in PER_POLARIZATION)
    total = sum(stages.values())
    return total / (total - per_polarization / 2)


if __name__ == "__main__":
    main()
