"""Cost and accuracy of the FEFF10 presets on OQMD-ICSD records.

For a seeded, element-balanced sample of records it runs every preset (real FEFF10), caches one
JSON per (record, preset) and prints: CPU-s per record (median, max) per preset, each preset's
SAMS error against "paper", the speed-up of sharing the SCF and the Green's function between
polarizations and of the
symmetry routes (versus running FEFF on every absorber site), and optionally a check that the
"axes", "sigma" and every-site routes agree. Re-running resumes: cached results are reused.

The speed-ups are computed from the measured per-stage seconds of each run: without sharing,
every polarization would repeat the SCF and FMS stages; without symmetry, every equivalent site
would run its own SCF, FMS and three polarizations. Each cached run names the stages it ran once
per site (``shared_stages``); runs cached before the Green's function was shared lack the key and
ran fms per polarization, so only their SCF stages count as shared.

Usage:
    nice python benchmarks/feff_cost.py --n 20 --presets paper,fast --check-routes 3 --processes 2
    python benchmarks/feff_cost.py --n 5 --variant scf07='{"scf": {"radius": 0.7}}'
    python benchmarks/feff_cost.py --report-only
"""

import argparse
import dataclasses
import json
import multiprocessing
import re
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vtc_fw.errors import VtcError
from vtc_fw.feff import compute_record_spectra
from vtc_fw.feff.inputs import preset_settings
from vtc_fw.feff.run import FMS_STAGES, POLARIZATION_STAGES, SCF_STAGES
from vtc_fw.science.records import AbsorberSite, Record, make_records
from vtc_fw.sources.oqmd import iter_oqmd_icsd

DEFAULT_CACHE = Path(__file__).parent / "results" / "feff_cost"


def sample_records(n: int, seed: int, max_sites: int) -> list[Record]:
    """``n`` records, round-robin over absorber elements, at most ``max_sites`` X sites each."""
    by_element: dict[str, list[Record]] = defaultdict(list)
    for entry in iter_oqmd_icsd(limit=8 * n, seed=seed):
        try:
            records = make_records(entry)
        except VtcError:
            continue
        for record in records:
            if len(record.absorber_indices) <= max_sites:
                by_element[record.element].append(record)
    chosen: list[Record] = []
    while len(chosen) < n and any(by_element.values()):
        for element in sorted(by_element):
            if by_element[element] and len(chosen) < n:
                chosen.append(by_element[element].pop(0))
    return chosen


def _cache_path(cache: Path, key: str, label: str) -> Path:
    return cache / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', key)}__{label}.json"


SHARED_STAGES = sorted(set(SCF_STAGES + FMS_STAGES) - set(POLARIZATION_STAGES))
"""Stages run once per site (on every polarization without sharing)."""
SCF_ONLY = sorted(set(SCF_STAGES) - set(POLARIZATION_STAGES))
"""The shared stages of runs cached before fms was shared."""


def run_cached(
    record: Record, preset: str | dict, cache: Path, label: str | None = None, **kwargs
) -> dict:
    """Summary of one FEFF run of a record (preset name or settings), cached under ``label``."""
    label = label or preset
    path = _cache_path(cache, record.key, label)
    if path.is_file():
        return json.loads(path.read_text())
    workdir = cache / "work" / path.stem
    try:
        spectra = compute_record_spectra(record, preset, workdir, **kwargs)
        summary = {
            "ok": True,
            "sams": spectra.sams,
            "cpu_s": spectra.cpu_s,
            "wall_s": spectra.wall_s,
            "route": spectra.route,
            "sites": spectra.sites,
            "n_absorbers": len(record.absorber_indices),
            "stages": spectra.stages,
            "shared_stages": SHARED_STAGES,
            "rungs": [a["rung"] for a in spectra.attempts],
        }
    except VtcError as error:
        summary = {"ok": False, "error": error.as_dict()}
    summary.update(record_key=record.key, preset=preset, label=label)
    path.write_text(json.dumps(summary, indent=1))
    archive = workdir.with_suffix(".tar.gz")
    archive.unlink(missing_ok=True)  # the benchmark keeps figures, not FEFF directories
    return summary


def _run_job(job: tuple[Record, str | dict, Path, str]) -> dict:
    """:func:`run_cached` of one (record, preset, cache, label) for a process pool."""
    return run_cached(*job)


def variant_settings(text: str) -> tuple[str, dict]:
    """``NAME=JSON`` → (NAME, "paper" with the JSON's keys replaced; dict values merged)."""
    name, _, overrides = text.partition("=")
    settings = preset_settings("paper")
    for key, value in json.loads(overrides).items():
        merge = isinstance(value, dict) and isinstance(settings.get(key), dict)
        settings[key] = {**settings[key], **value} if merge else value
    return name, settings


def _split_seconds(site: dict[str, Any], shared_stages: list[str]) -> tuple[float, float]:
    """(shared stage seconds, polarization stage seconds) of one site."""
    shared = sum(s for name, s in site["stages"].items() if name in shared_stages)
    return shared, sum(site["stages"].values()) - shared


def speedups(summary: dict[str, Any]) -> tuple[float, float]:
    """(SCF and FMS sharing speed-up, symmetry-route speed-up versus every site) of one run."""
    shared = unshared = every_site = 0.0
    for site in summary["sites"]:
        once, pol = _split_seconds(site, summary.get("shared_stages", SCF_ONLY))
        n_pol = site["n_polarizations"]
        shared += once + pol
        unshared += n_pol * once + pol
        every_site += site["multiplicity"] * (once + 3 * pol / n_pol)
    return unshared / shared, every_site / shared


def check_routes(records: list[Record], preset: str, cache: Path, count: int) -> list[str]:
    """Compare the "axes", "sigma" and every-site routes on multi-site records."""
    lines = []
    multi = [r for r in records if any(s.multiplicity > 1 for s in r.absorber_sites)][:count]
    for record in multi:
        every = dataclasses.replace(
            record,
            absorber_sites=[AbsorberSite(i, (i,), (np.eye(3),)) for i in record.absorber_indices],
        )
        results = {
            "axes": run_cached(record, preset, cache, f"{preset}-axes", route="axes"),
            "sigma": run_cached(record, preset, cache, f"{preset}-sigma", route="sigma"),
            "every": run_cached(every, preset, cache, f"{preset}-every", route="axes"),
        }
        if not all(r["ok"] for r in results.values()):
            lines.append(f"  {record.key}: a route failed")
            continue
        values = {name: r["sams"] for name, r in results.items()}
        spread = max(values.values()) - min(values.values())
        text = "  ".join(f"{k} {v:.5f}" for k, v in values.items())
        lines.append(
            f"  {record.key} ({len(record.absorber_indices)} sites): {text}  Δ {spread:.1e}"
        )
    return lines


def _self_consistent(summary: dict | None) -> bool:
    """A successful run none of whose sites fell back to the ladder's no-SCF rung."""
    return bool(summary and summary["ok"] and "no_scf" not in summary["rungs"])


def report(cache: Path, presets: list[str]) -> None:
    """Print the figures of every cached run."""
    runs = [json.loads(p.read_text()) for p in sorted(cache.glob("*.json"))]
    by_key = {(r["record_key"], r["label"]): r for r in runs}
    keys = sorted({r["record_key"] for r in runs if r["label"] in presets})
    print(f"{len(keys)} records in {cache}")
    for preset in presets:
        done = [by_key[k, preset] for k in keys if (k, preset) in by_key]
        ok = [r for r in done if r["ok"]]
        if not ok:
            continue
        cpu = [r["cpu_s"] for r in ok]
        factors = np.array([speedups(r) for r in ok])
        scf_speedup, route_speedup = np.median(factors, axis=0)
        line = (
            f"{preset:>6}: {len(ok)}/{len(done)} ok, CPU-s per record"
            f" median {statistics.median(cpu):.1f} max {max(cpu):.1f};"
            f" SCF+FMS sharing ×{scf_speedup:.2f}, symmetry route ×{route_speedup:.2f} (median)"
        )
        errors = [
            abs(r["sams"] - by_key[r["record_key"], "paper"]["sams"])
            for r in ok
            if _self_consistent(by_key.get((r["record_key"], "paper")))
        ]
        if preset != "paper" and errors:
            within = sum(e <= 0.003 for e in errors)
            line += (
                f"; |ΔSAMS| vs paper median {statistics.median(errors):.4f} max {max(errors):.4f}"
                f" ({within}/{len(errors)} ≤ 0.003)"
            )
        print(line)
    for r in runs:
        if not r["ok"]:
            print(f"  failed: {r['record_key']} {r['label']}: {r['error']['reason']}")
        elif not _self_consistent(r):
            print(f"  no SCF on a site (not compared): {r['record_key']} {r['label']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="number of records")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-sites", type=int, default=4, help="skip records with more X sites")
    parser.add_argument("--presets", default="paper,fast")
    parser.add_argument("--check-routes", type=int, default=0, help="multi-site records to check")
    parser.add_argument("--route-preset", default="fast")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help='NAME=JSON: "paper" with these settings, e.g. grid04=\'{"xes": [-25, 5, 0.4]}\'',
    )
    parser.add_argument("--processes", type=int, default=1, help="FEFF runs at once")
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    settings = dict(variant_settings(text) for text in args.variant)
    settings.update((name, name) for name in args.presets.split(","))
    presets = list(settings)
    args.cache.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        records = sample_records(args.n, args.seed, args.max_sites)
        jobs = [(r, settings[p], args.cache, p) for r in records for p in presets]
        with multiprocessing.Pool(args.processes) as pool:
            for summary in pool.imap_unordered(_run_job, jobs):
                state = (
                    f"SAMS {summary['sams']:.4f} CPU {summary['cpu_s']:.1f} s"
                    if summary["ok"]
                    else summary["error"]["reason"]
                )
                print(f"{summary['record_key']} {summary['label']}: {state}", flush=True)
        for line in check_routes(records, args.route_preset, args.cache, args.check_routes):
            print(line)
    report(args.cache, presets)


if __name__ == "__main__":
    main()
