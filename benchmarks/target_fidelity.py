"""How the target moves with the FEFF settings: cluster size (issue G) and a short SCF (issue H).

``cluster-size``: is the target converged in the cluster size? For records of the
paper-fidelity σ sample (vtc_fw.app.sampling.cheaper_than_median on the reference tasks, seed
2028: the first ``--per-element`` of each element) it runs FEFF with shell-complete clusters to
the 30th, 45th and 60th neighbour (preset key ``shell_atoms``: the SCF and FMS radii are
fractions of the shell radius, so both follow the cluster; the basis stays the 30-atom
quadrupole basis; ``--scf-shell 30`` adds runs whose FMS follows each intermediate size while
the SCF stays at the 30-atom shell) and prints, for each size against the largest: the change
of SAMS, SAMS_max and A_inv (median, max), the Spearman correlation of the records' ranking,
and the CPU-s.

``short-scf``: does a short SCF remove the cheap fidelity's tail? On the ``--worst`` reference
records with the largest |SAMS(screen) − SAMS(paper)| (committed tasks), and on ``--random``
further records drawn at random (``--seed``) among the rest of the pairs (is it still right where
screen was?), it runs each ``--variant NAME='{settings over "paper"}'`` and prints every
variant's |ΔSAMS| against paper beside screen's, with the CPU-s, for each group.

Both cache one JSON per (record, variant) under benchmarks/results/ and resume from it. A
cluster-size run at the preset's own 30 atoms is taken from the committed task of that record
and preset where one exists (data/paper_sigma for "paper", data/screen for "screen": the same
settings, computed by the workflow; the cache file names its source) instead of being run again.

Usage:
    nice python benchmarks/target_fidelity.py cluster-size --preset screen --sizes 30,45,60
    nice python benchmarks/target_fidelity.py cluster-size --preset paper --scf-shell 30 \
        --records 15
    nice python benchmarks/target_fidelity.py short-scf --worst 10 \
        --variant scf5='{"scf": {"radius": 0.5, "nscf": 5, "require_convergence": false}}'
    python benchmarks/target_fidelity.py cluster-size --report-only
"""

import argparse
import json
import multiprocessing
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from vtc_fw.app.sampling import cheaper_than_median
from vtc_fw.app.transfer import read_transfer_file
from vtc_fw.errors import VtcError
from vtc_fw.feff import compute_record_spectra
from vtc_fw.feff.inputs import preset_settings
from vtc_fw.science.anisotropy import (
    anisotropy_invariant,
    sams_in_basis,
    sams_max,
    sigma_from_components,
)
from vtc_fw.science.records import make_records
from vtc_fw.sources.oqmd import iter_oqmd_icsd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
CACHES = {"cluster-size": RESULTS / "cluster_convergence", "short-scf": RESULTS / "short_scf"}
QUANTITIES = ("sams", "sams_max", "a_inv")
COMMITTED = {"paper": ROOT / "data" / "paper_sigma", "screen": ROOT / "data" / "screen"}
"""Committed task files with σ, by preset: their 30-atom runs seed the cluster-size cache."""

Job = tuple[str, str, str, dict[str, Any], Any]
"""(structure id, element, variant name, FEFF settings, StructureEntry)."""


def reference_tasks(path: Path) -> list[dict[str, Any]]:
    """The task documents of a committed file (its structures lines left out)."""
    return [task.model_dump(mode="json") for task in read_transfer_file(path).tasks]


def sigma_sample(per_element: int) -> list[tuple[str, str]]:
    """(structure id, element) of the first ``per_element`` σ-sample records of each element.

    Round-robin over the elements (every element's first record, then every second), so a run
    stopped early still spans the elements.
    """
    tasks = reference_tasks(ROOT / "data" / "reference_paper.jsonl.gz")
    sample = cheaper_than_median(tasks, per_element=6, seed=2028)
    return [
        (ids[rank], element)
        for rank in range(per_element)
        for element, ids in sample.items()
        if rank < len(ids)
    ]


@cache
def screen_pairs() -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Paper SAMS, paper CPU-s and screen SAMS of the committed records, by record key."""
    reference = reference_tasks(ROOT / "data" / "reference_paper.jsonl.gz")
    paper_cpu = {t["record_key"]: t["cpu_s"] for t in reference if t["state"] == "successful"}
    screen: dict[str, float] = {}
    for path in sorted((ROOT / "data" / "screen").glob("batch_*.jsonl.gz")):
        screen |= labels(reference_tasks(path))
    return labels(reference), paper_cpu, screen


def short_scf_records(worst: int, random: int, seed: int) -> dict[str, list[tuple[str, str]]]:
    """(structure id, element) of the ``worst`` pairs by |screen − paper| and ``random`` others."""
    paper, _, screen = screen_pairs()
    common = sorted(set(paper) & set(screen), key=lambda k: -abs(screen[k] - paper[k]))
    rest = sorted(common[worst:])
    drawn = np.random.default_rng(seed).permutation(len(rest))[:random]
    groups = {"worst": common[:worst], "random": [rest[i] for i in sorted(drawn)]}
    return {name: [split_key(key) for key in keys] for name, keys in groups.items()}


def split_key(key: str) -> tuple[str, str]:
    """(structure id, element) of a record key."""
    structure_id, _, element = key.rpartition(":")
    return structure_id, element


def labels(tasks: list[dict[str, Any]]) -> dict[str, float]:
    """Record key → SAMS of the successful tasks."""
    return {t["record_key"]: t["sams"] for t in tasks if t["state"] == "successful"}


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` applied, nested dicts merged key by key."""
    result = dict(base)
    for key, value in override.items():
        inner = result.get(key)
        if isinstance(value, dict) and isinstance(inner, dict):
            value = merged(inner, value)
        result[key] = value
    return result


def run_one(job: Job) -> dict[str, Any]:
    """FEFF on one record with one variant's settings; the quantities and the cost (or error)."""
    structure_id, element, name, settings, entry = job
    result: dict[str, Any] = {"record": f"{structure_id}:{element}", "variant": name}
    try:
        record = make_records(entry, elements=[element])[0]
        with tempfile.TemporaryDirectory() as workdir:
            spectra = compute_record_spectra(record, settings, Path(workdir) / "run")
    except VtcError as error:
        return result | {"error": str(error)}
    sigma = spectra.sigma
    size = settings.get("shell_atoms", record.n_neighbors)
    return (
        result
        | {"size": size}
        | quantities(spectra.energies, sigma, record.basis)
        | {
            "sams_diagonal": spectra.sams,
            "cpu_s": spectra.cpu_s,
            "atoms": sorted(
                {len(c.species) for c in record.with_shell_atoms(size).site_clusters.values()}
            ),
        }
    )


def quantities(energies: Any, sigma: Any, basis: Any) -> dict[str, float]:
    """SAMS in ``basis``, SAMS_max and A_inv of one σ(E)."""
    return {
        "sams": sams_in_basis(energies, sigma, basis),
        "sams_max": sams_max(energies, sigma, basis).value,
        "a_inv": anisotropy_invariant(energies, sigma),
    }


def seed_committed(cache: Path, preset: str, records: list[tuple[str, str]]) -> None:
    """Cache the committed 30-atom tasks of ``records`` as the variant ``{preset}_30``."""
    wanted = {f"{sid}:{element}" for sid, element in records}
    entries = {e.structure_id: e for e in iter_oqmd_icsd() if e.structure_id in dict(records)}
    cache.mkdir(parents=True, exist_ok=True)
    for path in sorted(COMMITTED[preset].glob("batch_*.jsonl.gz")):
        for task in reference_tasks(path):
            key = task["record_key"]
            target = cache_path(cache, key, f"{preset}_30")
            if key not in wanted or task["state"] != "successful" or target.exists():
                continue
            if task["preset"] != preset or not task.get("sigma"):
                continue
            record = make_records(entries[task["structure_id"]], elements=[task["element"]])[0]
            energies = np.asarray(task["energies"])
            sigma = sigma_from_components(task["sigma"])
            result = {"record": key, "variant": f"{preset}_30", "size": 30}
            result |= quantities(energies, sigma, np.asarray(task["basis"]))
            result |= {
                "sams_diagonal": task["sams"],
                "cpu_s": task["cpu_s"],
                "atoms": sorted({len(c.species) for c in record.site_clusters.values()}),
                "source": str(path.relative_to(ROOT)),
            }
            target.write_text(json.dumps(result, indent=1))


def variant_groups(variants: dict[str, dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    """The variants in the order they run: each plain one on every record, then the SCF-held.

    So a run stopped early has the smaller sizes on every record and the larger on the first.
    """
    plain = [{name: settings} for name, settings in variants.items() if "_scf" not in name]
    held = {name: settings for name, settings in variants.items() if "_scf" in name}
    return [*plain, held]


def cache_path(cache: Path, record: str, variant: str) -> Path:
    """One JSON per (record, variant)."""
    return cache / f"{record.replace(':', '_')}_{variant}.json"


def compute(
    cache: Path,
    records: list[tuple[str, str]],
    variants: dict[str, dict[str, Any]],
    processes: int,
) -> None:
    """Run every missing (record, variant) and cache the results."""
    wanted = {sid for sid, _ in records}
    entries = {e.structure_id: e for e in iter_oqmd_icsd() if e.structure_id in wanted}
    jobs: list[Job] = [
        (sid, element, name, settings, entries[sid])
        for group in variant_groups(variants)
        for sid, element in records
        for name, settings in group.items()
        if not cache_path(cache, f"{sid}:{element}", name).exists()
    ]
    cache.mkdir(parents=True, exist_ok=True)
    with multiprocessing.Pool(processes) as pool:
        for result in pool.imap_unordered(run_one, jobs):
            path = cache_path(cache, result["record"], result["variant"])
            path.write_text(json.dumps(result, indent=1))
            value = result.get("sams", result.get("error"))
            print(f"{result['record']} {result['variant']}: {value}", flush=True)


def cached(cache: Path, variants: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Variant → record → successful cached result."""
    results: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in variants}
    for path in cache.glob("*.json"):
        result = json.loads(path.read_text())
        name = result.get("variant") or f"{result['preset']}_{result['size']}"
        if name in results and "error" not in result:
            results[name][result["record"]] = result
    return results


def report_sizes(preset: str, sizes: list[int], scf_shell: int | None) -> None:
    """Print each size's change against the largest, ranking stability and CPU cost.

    With ``scf_shell``, the runs whose SCF stayed at that shell follow, on the records that
    have them too.
    """
    names = [f"{preset}_{size}" for size in sizes]
    report_variants(names, names[-1])
    if scf_shell is not None:
        held = [scf_variant(preset, size, scf_shell) for size in sizes[:-1] if size > scf_shell]
        report_variants([*held, names[-1]], names[-1])


def scf_held_variants(
    base: dict[str, Any], sizes: list[int], scf_shell: int, preset: str
) -> dict[str, dict[str, Any]]:
    """Runs with FMS to each size between ``scf_shell`` and the largest, the SCF kept there."""
    if not base.get("scf"):
        raise SystemExit(f"preset {preset} runs no SCF: --scf-shell has nothing to keep")
    return {
        scf_variant(preset, size, scf_shell): base
        | {"shell_atoms": size, "scf": base["scf"] | {"shell_atoms": scf_shell}}
        for size in sizes[:-1]
        if size > scf_shell
    }


def scf_variant(preset: str, size: int, scf_shell: int) -> str:
    """Name of the run with FMS to ``size`` neighbours and the SCF kept at ``scf_shell``."""
    return f"{preset}_{size}_scf{scf_shell}"


def report_variants(names: list[str], reference: str) -> None:
    """Each variant's change against ``reference`` on the records every variant has."""
    results = cached(CACHES["cluster-size"], names)
    common = sorted(set.intersection(*(set(r) for r in results.values())))
    print(f"{len(common)} records computed with every one of {', '.join(names)}")
    if len(common) < 3:
        return
    for name in names:
        rows = [results[name][key] for key in common]
        cpu = np.array([row["cpu_s"] for row in rows])
        atoms = np.array([np.mean(row["atoms"]) for row in rows])
        line = [
            f"{name} ({np.median(atoms):.0f} atoms): CPU-s median"
            f" {np.median(cpu):.0f}, max {cpu.max():.0f}"
        ]
        if name != reference:
            line += [
                difference(q, rows, [results[reference][k] for k in common]) for q in QUANTITIES
            ]
        print("; ".join(line))


def difference(name: str, rows: list[dict[str, Any]], reference: list[dict[str, Any]]) -> str:
    """|Δ| (median, max, relative median) and Spearman of one quantity against a reference."""
    ours = np.array([row[name] for row in rows])
    ref = np.array([row[name] for row in reference])
    delta = np.abs(ours - ref)
    relative = delta / np.maximum(ref, 1e-3)
    return (
        f"{name}: |Δ| median {np.median(delta):.3f} max {delta.max():.3f} (relative median"
        f" {np.median(relative):.0%}), Spearman {spearmanr(ours, ref).statistic:.3f}"
    )


def report_short_scf(groups: dict[str, list[tuple[str, str]]], variants: list[str]) -> None:
    """Each variant's |ΔSAMS| against paper beside screen's, record by record, with CPU-s."""
    paper, paper_cpu, screen = screen_pairs()
    results = cached(CACHES["short-scf"], variants)
    print("| record | paper | screen | " + " | ".join(variants) + " |")
    print("|---" * (len(variants) + 3) + "|")
    for sid, element in [record for records in groups.values() for record in records]:
        key = f"{sid}:{element}"
        cells = [
            f"{results[v][key]['sams']:.3f} ({results[v][key]['cpu_s']:.0f} s)"
            if key in results[v]
            else "—"
            for v in variants
        ]
        print(f"| {key} | {paper[key]:.3f} | {screen[key]:.3f} | " + " | ".join(cells) + " |")
    for group, records in groups.items():
        keys = {f"{sid}:{element}" for sid, element in records}
        for v in variants:
            done = sorted(keys & set(results[v]))
            if done:
                error = np.array([abs(results[v][k]["sams"] - paper[k]) for k in done])
                before = np.array([abs(screen[k] - paper[k]) for k in done])
                cpu = np.median([results[v][k]["cpu_s"] for k in done])
                ratio = np.median([paper_cpu[k] / results[v][k]["cpu_s"] for k in done])
                print(
                    f"{group} {v}: {len(done)} records, |ΔSAMS| vs paper median"
                    f" {np.median(error):.3f} p90 {np.percentile(error, 90):.3f} max"
                    f" {error.max():.3f} (screen on them: {np.median(before):.3f} /"
                    f" {np.percentile(before, 90):.3f} / {before.max():.3f}),"
                    f" CPU-s median {cpu:.0f} (paper/variant per record: median ×{ratio:.1f})"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", choices=sorted(CACHES))
    parser.add_argument("--preset", default="screen", help="cluster-size: preset of the runs")
    parser.add_argument("--sizes", default="30,45,60", help="cluster-size: neighbour counts")
    parser.add_argument(
        "--scf-shell",
        type=int,
        help="cluster-size: also run each larger size with the SCF kept here",
    )
    parser.add_argument("--per-element", type=int, default=2, help="cluster-size: records")
    parser.add_argument(
        "--records", type=int, help="cluster-size: only the first N of the round-robin sample"
    )
    parser.add_argument("--worst", type=int, default=10, help="short-scf: worst records")
    parser.add_argument("--random", type=int, default=0, help="short-scf: random records")
    parser.add_argument("--seed", type=int, default=0, help="short-scf: seed of --random")
    parser.add_argument("--variant", action="append", default=[], help="short-scf: NAME=JSON")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--report-only", action="store_true")
    arguments = parser.parse_args()
    if arguments.study == "cluster-size":
        sizes = [int(size) for size in arguments.sizes.split(",")]
        base = preset_settings(arguments.preset) | {"name": arguments.preset}
        variants = {f"{arguments.preset}_{n}": base | {"shell_atoms": n} for n in sizes}
        if arguments.scf_shell is not None:
            variants |= scf_held_variants(base, sizes, arguments.scf_shell, arguments.preset)
        records = sigma_sample(arguments.per_element)[: arguments.records]
        if arguments.preset in COMMITTED and 30 in sizes:
            seed_committed(CACHES["cluster-size"], arguments.preset, records)
    else:
        pairs = dict(item.split("=", 1) for item in arguments.variant)
        paper = preset_settings("paper")
        variants = {
            name: merged(paper, json.loads(text)) | {"name": name} for name, text in pairs.items()
        }
        groups = short_scf_records(arguments.worst, arguments.random, arguments.seed)
        records = [record for members in groups.values() for record in members]
    if not arguments.report_only:
        compute(CACHES[arguments.study], records, variants, arguments.processes)
    if arguments.study == "cluster-size":
        report_sizes(arguments.preset, sizes, arguments.scf_shell)
    else:
        report_short_scf(groups, list(variants))


if __name__ == "__main__":
    main()
