"""FEFF's CPU time with the Green's function computed once per site versus once per polarization.

For one absorber site of an OQMD-ICSD record it runs the SCF stages once (real FEFF10), then the
three polarizations along the record's basis axes two ways, each on copies of the SCF directory:

* per polarization: rdinp, xsph, fms, mkgtr, path, genfmt, ff2x (what an external FEFF does);
* shared: ``FMS_STAGES`` once without a polarization, then ``POLARIZATION_STAGES`` per axis
  (what vtc-fw runs in-process).

Prints the CPU seconds of the SCF and of each way, and whether every ``xmu.dat`` and the
Green's function ``gg.bin`` are byte-identical between the two.

Usage:
    python benchmarks/feff_shared_fms.py [--structure-id oqmd-icsd:10020-13875-Ni3GeC]
        [--element Ni] [--site INDEX] [--preset paper] [--workdir /tmp/feff_shared_fms]
"""

import argparse
import filecmp
import shutil
from pathlib import Path

import numpy as np

from vtc_fw.feff.engine import site_input
from vtc_fw.feff.inputs import XesInputSet
from vtc_fw.feff.run import FMS_STAGES, POLARIZATION_STAGES, SCF_STAGES, copy_scf, run_stages
from vtc_fw.science.records import make_records
from vtc_fw.sources.oqmd import iter_oqmd_icsd

RECOMPUTING_STAGES = ("rdinp", "xsph", "fms", "mkgtr", "path", "genfmt", "ff2x")
"""One polarization with its own Green's function."""


def three_axes(inputs: XesInputSet, source: Path, workdir: Path, name: str, stages) -> float:
    """CPU seconds of the three axes, each on a copy of ``source`` named ``{name}{axis}``."""
    cpu_s = 0.0
    for axis, direction in enumerate(np.eye(3)):
        directory = copy_scf(source, workdir / f"{name}{axis}")
        cpu_s += run_stages(inputs.with_polarization(direction), directory, stages).cpu_s
    return cpu_s


def per_polarization(inputs: XesInputSet, scf: Path, workdir: Path) -> float:
    """CPU seconds of the three axes, each recomputing the Green's function."""
    return three_axes(inputs, scf, workdir, "own", RECOMPUTING_STAGES)


def shared(inputs: XesInputSet, scf: Path, workdir: Path) -> float:
    """CPU seconds of one Green's function and the three axes reusing it."""
    site = copy_scf(scf, workdir / "site")
    fms_s = run_stages(inputs, site, FMS_STAGES).cpu_s
    return fms_s + three_axes(inputs, site, workdir, "shared", POLARIZATION_STAGES)


def identical(first: Path, second: Path, name: str) -> bool:
    return filecmp.cmp(first / name, second / name, shallow=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structure-id", default="oqmd-icsd:10020-13875-Ni3GeC")
    parser.add_argument("--element", default="Ni")
    parser.add_argument("--site", type=int, help="absorber site index (default: the first)")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/feff_shared_fms"))
    arguments = parser.parse_args()
    entry = next(e for e in iter_oqmd_icsd() if e.structure_id == arguments.structure_id)
    (record,) = make_records(entry, elements=[arguments.element])
    site = arguments.site if arguments.site is not None else record.absorber_sites[0].index
    inputs = site_input(record, site, arguments.preset)
    workdir = arguments.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    scf_s = run_stages(inputs, workdir / "scf", SCF_STAGES).cpu_s
    print(f"{record.key} site {site}, preset {arguments.preset}: SCF {scf_s:.1f} CPU-s", flush=True)
    own_s = per_polarization(inputs, workdir / "scf", workdir)
    print(f"  3 axes, Green's function per polarization: {own_s:.1f} CPU-s", flush=True)
    shared_s = shared(inputs, workdir / "scf", workdir)
    print(f"  3 axes, Green's function once:             {shared_s:.1f} CPU-s")
    same_xmu = [identical(workdir / f"own{a}", workdir / f"shared{a}", "xmu.dat") for a in range(3)]
    same_gg = all(identical(workdir / f"own{a}", workdir / "site", "gg.bin") for a in range(3))
    print(
        f"  site total {scf_s + own_s:.1f} → {scf_s + shared_s:.1f} CPU-s"
        f" (×{(scf_s + own_s) / (scf_s + shared_s):.2f});"
        f" xmu.dat byte-identical per axis: {same_xmu}; gg.bin identical: {same_gg}"
    )


if __name__ == "__main__":
    main()
