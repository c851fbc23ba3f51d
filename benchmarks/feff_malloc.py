"""FEFF's CPU time with and without vtc-fw's glibc allocator pad (``MALLOC_TUNABLES``).

Runs the SCF and FMS stages, then one polarization, of one absorber site of an OQMD-ICSD record
twice with real FEFF10: with glibc's default allocator settings and with ``MALLOC_TUNABLES``. Prints
the CPU seconds (user, system), the minor page faults of the FEFF processes, and whether every
output file is byte-identical. The default record is one whose SCF frees and re-allocates a
25 MiB block in a loop (the case the pad is for); records without that pattern show no change.

Usage:
    python benchmarks/feff_malloc.py [--structure-id oqmd-icsd:7702-11373-Sc5NCl8]
        [--element Sc] [--site 10] [--preset paper] [--workdir /tmp/feff_malloc]
"""

import argparse
import filecmp
import resource
import shutil
from pathlib import Path

import numpy as np

from vtc_fw.feff.engine import site_input
from vtc_fw.feff.run import (
    FMS_STAGES,
    MALLOC_TUNABLES,
    POLARIZATION_STAGES,
    SCF_STAGES,
    run_stages,
)
from vtc_fw.science.records import make_records
from vtc_fw.sources.oqmd import iter_oqmd_icsd


def run_site(inputs, polarized, directory: Path, tunables: str) -> dict[str, float]:
    """SCF, FMS and one polarization in ``directory``: CPU seconds, system seconds, page faults."""
    shutil.rmtree(directory, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_stages(inputs, directory / "scf", SCF_STAGES, malloc_tunables=tunables)
    run_stages(inputs, directory / "scf", FMS_STAGES, malloc_tunables=tunables)
    shutil.copytree(directory / "scf", directory / "pol0")
    run_stages(polarized, directory / "pol0", POLARIZATION_STAGES, malloc_tunables=tunables)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "faults": after.ru_minflt - before.ru_minflt,
    }


def differing_files(first: Path, second: Path) -> list[str]:
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    return [str(n) for n in names if not filecmp.cmp(first / n, second / n, shallow=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--structure-id", default="oqmd-icsd:7702-11373-Sc5NCl8")
    parser.add_argument("--element", default="Sc")
    parser.add_argument("--site", type=int, default=10, help="absorber site index")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/feff_malloc"))
    arguments = parser.parse_args()
    entry = next(e for e in iter_oqmd_icsd() if e.structure_id == arguments.structure_id)
    (record,) = make_records(entry, elements=[arguments.element])
    inputs = site_input(record, arguments.site, arguments.preset)
    polarized = inputs.with_polarization(np.array([1.0, 0.0, 0.0]))  # the first basis axis
    results = {}
    for label, tunables in (
        ("glibc default", ""),
        (f"GLIBC_TUNABLES={MALLOC_TUNABLES}", MALLOC_TUNABLES),
    ):
        directory = arguments.workdir / ("default" if not tunables else "pad")
        results[label] = run_site(inputs, polarized, directory, tunables)
        r = results[label]
        print(
            f"{label:<45} CPU {r['user_s'] + r['sys_s']:7.1f} s (user {r['user_s']:.1f}, "
            f"system {r['sys_s']:.1f}), page faults {r['faults']:,}",
            flush=True,
        )
    diff = differing_files(arguments.workdir / "default", arguments.workdir / "pad")
    print(
        f"{record.key} site {arguments.site}, preset {arguments.preset}: "
        + ("every output file identical" if not diff else f"files differ: {diff}")
    )


if __name__ == "__main__":
    main()
