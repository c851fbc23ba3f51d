"""Structure sources, each yielding :class:`StructureEntry` with a stable id and provenance."""

from vtc_fw.sources.amcsd import iter_amcsd
from vtc_fw.sources.ase_db import iter_ase_db
from vtc_fw.sources.dedupe import (
    DeduplicationResult,
    DuplicateFinder,
    compound_key,
    deduplicate,
)
from vtc_fw.sources.entry import StructureEntry, three_d_metals_in
from vtc_fw.sources.files import SAMPLE_DIR, iter_directory, iter_sample
from vtc_fw.sources.mp import MPSource
from vtc_fw.sources.oqmd import iter_oqmd_icsd, oqmd_icsd_entries, oqmd_icsd_path
from vtc_fw.sources.sampling import stratified_sample

__all__ = [
    "SAMPLE_DIR",
    "DeduplicationResult",
    "DuplicateFinder",
    "MPSource",
    "StructureEntry",
    "compound_key",
    "deduplicate",
    "iter_amcsd",
    "iter_ase_db",
    "iter_directory",
    "iter_oqmd_icsd",
    "iter_sample",
    "oqmd_icsd_entries",
    "oqmd_icsd_path",
    "stratified_sample",
    "three_d_metals_in",
]
