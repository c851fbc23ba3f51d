"""Is the target converged in the cluster size? SAMS, SAMS_max and A_inv at 30, 45, 60 atoms.

For records of the paper-fidelity σ sample (vtc_fw.app.sampling.cheaper_than_median on the
reference tasks, seed 2028: the first ``--per-element`` of each element) it runs FEFF with
shell-complete clusters to the 30th, 45th and 60th neighbour (preset key ``shell_atoms``: the
SCF and FMS radii are fractions of the shell radius, so both follow the cluster; the basis stays
the 30-atom quadrupole basis), caches one JSON per (record, preset, size) and prints, for each
size against the largest: the change of each quantity (median, max), the Spearman correlation
of the records' ranking, and the CPU-s per record. Re-running resumes from the cache.

Usage:
    nice python benchmarks/cluster_convergence.py --preset screen --sizes 30,45,60 --per-element 2
    python benchmarks/cluster_convergence.py --preset screen --report-only
"""

import argparse
import gzip
import json
import multiprocessing
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from vtc_fw.app.sampling import cheaper_than_median
from vtc_fw.errors import VtcError
from vtc_fw.feff import compute_record_spectra
from vtc_fw.feff.inputs import preset_settings
from vtc_fw.science.anisotropy import anisotropy_invariant, sams_in_basis, sams_max
from vtc_fw.science.records import make_records
from vtc_fw.sources.oqmd import iter_oqmd_icsd

ROOT = Path(__file__).resolve().parents[1]
CACHE = Path(__file__).parent / "results" / "cluster_convergence"
QUANTITIES = ("sams", "sams_max", "a_inv")


def chosen_records(per_element: int) -> list[tuple[str, str]]:
    """(structure id, element) of the first ``per_element`` σ-sample records of each element."""
    with gzip.open(ROOT / "data" / "reference_paper.jsonl.gz", "rt", encoding="utf-8") as f:
        tasks = [json.loads(line) for line in f]
    sample = cheaper_than_median(tasks, per_element=6, seed=2028)
    return [(sid, element) for element, ids in sample.items() for sid in ids[:per_element]]


def run_one(job: tuple[str, str, str, int, dict[str, Any]]) -> dict[str, Any]:
    """FEFF on one record at one cluster size; the quantities and the cost (or the error)."""
    structure_id, element, preset, size, entry = job
    result: dict[str, Any] = {"record": f"{structure_id}:{element}", "preset": preset, "size": size}
    settings = preset_settings(preset) | {"shell_atoms": size, "name": preset}
    try:
        record = make_records(entry["entry"], elements=[element])[0]
        with tempfile.TemporaryDirectory() as workdir:
            spectra = compute_record_spectra(record, settings, Path(workdir) / "run")
    except VtcError as error:
        return result | {"error": str(error)}
    sigma = spectra.sigma
    result |= {
        "sams": sams_in_basis(spectra.energies, sigma, record.basis),
        "sams_max": sams_max(spectra.energies, sigma, record.basis).value,
        "a_inv": anisotropy_invariant(spectra.energies, sigma),
        "sams_diagonal": spectra.sams,
        "cpu_s": spectra.cpu_s,
        "atoms": sorted(
            {len(c.species) for c in record.with_shell_atoms(size).site_clusters.values()}
        ),
    }
    return result


def cache_path(record: str, preset: str, size: int) -> Path:
    """One JSON per (record, preset, size)."""
    return CACHE / f"{record.replace(':', '_')}_{preset}_{size}.json"


def compute(preset: str, sizes: list[int], per_element: int, processes: int) -> None:
    """Run every missing (record, size) of the study and cache the results."""
    wanted = chosen_records(per_element)
    entries = {e.structure_id: e for e in iter_oqmd_icsd() if e.structure_id in dict(wanted)}
    jobs = [
        (sid, element, preset, size, {"entry": entries[sid]})
        for sid, element in wanted
        for size in sizes
        if not cache_path(f"{sid}:{element}", preset, size).exists()
    ]
    CACHE.mkdir(parents=True, exist_ok=True)
    with multiprocessing.Pool(processes) as pool:
        for result in pool.imap_unordered(run_one, jobs):
            path = cache_path(result["record"], preset, result["size"])
            path.write_text(json.dumps(result, indent=1))
            print(
                f"{result['record']} @{result['size']}: {result.get('sams', result.get('error'))}"
            )


def report(preset: str, sizes: list[int]) -> None:
    """Print each size's change against the largest, ranking stability and CPU cost."""
    results: dict[int, dict[str, dict[str, Any]]] = {size: {} for size in sizes}
    for path in CACHE.glob(f"*_{preset}_*.json"):
        result = json.loads(path.read_text())
        if result["size"] in results and "error" not in result:
            results[result["size"]][result["record"]] = result
    largest = max(sizes)
    common = sorted(set.intersection(*(set(r) for r in results.values())))
    print(f"preset {preset}: {len(common)} records computed at every size {sizes}")
    if len(common) < 3:
        return
    for size in sizes:
        rows = [results[size][key] for key in common]
        cpu = np.array([row["cpu_s"] for row in rows])
        line = [f"{size} atoms: CPU-s median {np.median(cpu):.0f}, max {cpu.max():.0f}"]
        for name in QUANTITIES if size != largest else ():
            ours = np.array([row[name] for row in rows])
            ref = np.array([results[largest][key][name] for key in common])
            delta = np.abs(ours - ref)
            relative = delta / np.maximum(ref, 1e-3)
            line.append(
                f"{name}: |Δ| median {np.median(delta):.3f} max {delta.max():.3f} "
                f"(relative median {np.median(relative):.0%}), Spearman "
                f"{spearmanr(ours, ref).statistic:.3f}"
            )
        print("; ".join(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="screen")
    parser.add_argument("--sizes", default="30,45,60")
    parser.add_argument("--per-element", type=int, default=2)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]
    if not arguments.report_only:
        compute(arguments.preset, sizes, arguments.per_element, arguments.processes)
    report(arguments.preset, sizes)


if __name__ == "__main__":
    main()
