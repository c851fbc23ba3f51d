"""Which structures are worth FEFF: the domain and cost policy of new samples.

"quick" structures have one FEFF site and few elements (the default ``vtc-fw run``);
"broad" ones are the reference dataset's population (≤ 24 sites, in the paper's domain).
"""

from typing import Any

import numpy as np

from vtc_fw.db.config import DbConfig
from vtc_fw.errors import StructureError
from vtc_fw.keys import parse_record_key
from vtc_fw.science.features import F_ELEMENTS
from vtc_fw.science.oxidation_cache import shipped_oxidation
from vtc_fw.science.records import inequivalent_site_count
from vtc_fw.sources import StructureEntry, iter_oqmd_icsd, stratified_sample

MAX_SITES = 24
"""Largest cell computed by default: FEFF's cost grows with the inequivalent sites."""
QUICK_MAX_SITES = 12
QUICK_MAX_ELEMENTS = 3
"""Limits of the "quick" sample (with one 3d element on one inequivalent site)."""
SAMPLES = ("quick", "broad")
"""Populations ``vtc-fw run`` draws new structures from (see :func:`new_sample`)."""
RECORD_TIMEOUT_S = {"quick": 480.0, "broad": 1800.0}
"""Default wall-clock limit of one new record per sample, s. Without one, a single SCF that never
converges holds the whole run. 3 of the 135 quick records of the reference dataset took longer
than 480 s on one core (LaCoO3, CsVCl3, CsNiF3: 598–1,598 CPU-s; median 146), so the default run
stays near 10 minutes; "broad" keeps the reference dataset's own limit (3 of its 503 records
timed out)."""


def worth_computing(entry: StructureEntry, max_sites: int | None = MAX_SITES) -> bool:
    """Whether FEFF on this OQMD-ICSD structure yields training data at an affordable cost.

    Its records must lie in the paper's domain (ordered, no f-electron element, oxidation
    states assigned and not all zero), and its cell hold at most ``max_sites`` sites.
    """
    structure = entry.structure
    if structure is None or not structure.is_ordered:
        return False
    if max_sites is not None and len(structure) > max_sites:
        return False
    if F_ELEMENTS & set(structure.symbol_set):
        return False
    oxidation = shipped_oxidation(entry.structure_id, structure)
    return oxidation is not None and oxidation.charges is not None and bool(any(oxidation.charges))


def quick_to_compute(entry: StructureEntry) -> bool:
    """Whether FEFF on this structure is among the cheapest in the paper's domain.

    One 3d element on one inequivalent site (so one record and one FEFF site), at most
    ``QUICK_MAX_ELEMENTS`` elements (potential types) and ``QUICK_MAX_SITES`` sites. The 135
    such records among the 500 of the reference dataset cost 34–1,598 CPU-s with "paper"
    (median 146), against 196 at the median of all records.
    """
    structure = entry.structure
    if structure is None or not worth_computing(entry, QUICK_MAX_SITES):
        return False
    metals = entry.three_d_metals
    if len(metals) != 1 or len(structure.symbol_set) > QUICK_MAX_ELEMENTS:
        return False
    try:
        return inequivalent_site_count(structure, metals[0]) == 1
    except StructureError:
        return False


def new_sample(config: DbConfig, sample: str, n_new: int, seed: int) -> list[StructureEntry]:
    """``n_new`` element-balanced structures of the ``sample`` population, all new.

    New: none has a task or a workflow yet.

    Raises:
        ValueError: If ``sample`` is not one of ``SAMPLES``.
    """
    if sample not in SAMPLES:
        raise ValueError(f"sample must be one of {SAMPLES}, got {sample!r}")
    if not n_new:
        return []
    wanted = quick_to_compute if sample == "quick" else worth_computing
    record_keys = set(config.collection("tasks").distinct("record_key"))
    record_keys |= set(config.launchpad().workflows.distinct("metadata.record_key"))
    done_structures = {parse_record_key(key)[0] for key in record_keys}
    population = [
        entry
        for entry in iter_oqmd_icsd()
        if entry.structure_id not in done_structures and wanted(entry)
    ]
    return stratified_sample(population, n_new, seed, in_draw_order=True)


def cheaper_than_median(
    tasks: list[dict[str, Any]], per_element: int, seed: int
) -> dict[str, list[str]]:
    """A seeded draw of successful tasks that cost at most their element's median CPU time.

    The paper-fidelity σ sample (scripts/reference_dataset.py ``--dataset sigma``) and the
    cluster-size study (benchmarks/cluster_convergence.py) draw their records this way, so both
    fit in a session on two cores and share their records.

    Args:
        tasks: Task documents (``element``, ``state``, ``cpu_s``, ``structure_id``).
        per_element: Records drawn per element.
        seed: Seed of the draw.

    Returns:
        Element → structure ids, elements in alphabetical order, ids in sorted order.
    """
    rng = np.random.default_rng(seed)
    chosen: dict[str, list[str]] = {}
    for element in sorted({task["element"] for task in tasks}):
        done = [t for t in tasks if t["element"] == element and t["state"] == "successful"]
        median = np.median([t["cpu_s"] for t in done])
        cheap = sorted(t["structure_id"] for t in done if t["cpu_s"] <= median)
        picks = rng.choice(len(cheap), size=per_element, replace=False)
        chosen[element] = [cheap[i] for i in sorted(picks)]
    return chosen
