"""Featurize many structures on several processes, failures returned as data."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from vtc_fw.errors import VtcError
from vtc_fw.science.features import DEFAULT_FEATURE_EXPONENT, FeatureRow, featurize_record
from vtc_fw.science.oxidation_cache import shipped_oxidation as cached_states
from vtc_fw.science.records import make_records


@dataclass(frozen=True)
class FeaturizeFailure:
    """A structure that yielded no feature rows, and why."""

    structure_id: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in a ``features`` error document."""
        return {"structure_id": self.structure_id, "reason": self.reason, "message": self.message}


def featurize_entry(
    entry: Any, exponent: int = DEFAULT_FEATURE_EXPONENT, shipped_oxidation: bool = False
):
    """Feature rows of every record of one ``StructureEntry``, or a failure.

    With ``shipped_oxidation`` the precomputed states of OQMD-ICSD structures are used
    (:mod:`vtc_fw.science.oxidation_cache`); other structures get theirs assigned afresh.
    Unexpected exceptions (a pymatgen or spglib bug on odd input) are failures too, so that one
    structure never stops a batch.
    """
    try:
        oxidation = None
        if shipped_oxidation:
            oxidation = cached_states(entry.structure_id, entry.structure)
        records = make_records(entry, oxidation=oxidation)
        return [featurize_record(record, exponent) for record in records]
    except VtcError as error:
        return FeaturizeFailure(entry.structure_id, error.reason, str(error))
    except Exception as error:
        return FeaturizeFailure(
            entry.structure_id, "unexpected", f"{type(error).__name__}: {error}"
        )


def _featurize_task(arguments: tuple[Any, int, bool]):
    return featurize_entry(*arguments)


def featurize_entries(
    entries: Iterable[Any],
    exponent: int = DEFAULT_FEATURE_EXPONENT,
    workers: int = 1,
    shipped_oxidation: bool = False,
) -> Iterator[list[FeatureRow] | FeaturizeFailure]:
    """Featurize entries in order, on ``workers`` processes (1: in this process).

    Yields:
        Per entry, its list of feature rows or a :class:`FeaturizeFailure`.
    """
    tasks = ((entry, exponent, shipped_oxidation) for entry in entries)
    if workers <= 1:
        yield from map(_featurize_task, tasks)
        return
    with get_context("forkserver").Pool(workers) as pool:
        yield from pool.imap(_featurize_task, tasks, chunksize=8)
