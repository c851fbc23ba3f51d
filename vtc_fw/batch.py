"""Featurize many structures on several processes, failures returned as data."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

from vtc_fw.errors import VtcError
from vtc_fw.features import DEFAULT_FEATURE_EXPONENT, FeatureRow, featurize_record
from vtc_fw.records import make_records


@dataclass(frozen=True)
class FeaturizeFailure:
    """A structure that yielded no feature rows, and why."""

    structure_id: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in a ``features`` error document."""
        return {"structure_id": self.structure_id, "reason": self.reason, "message": self.message}


def featurize_entry(entry: Any, exponent: int = DEFAULT_FEATURE_EXPONENT):
    """Feature rows of every record of one ``StructureEntry``, or a failure.

    Unexpected exceptions (a pymatgen or spglib bug on odd input) are failures too, so that one
    structure never stops a batch.
    """
    try:
        return [featurize_record(record, exponent) for record in make_records(entry)]
    except VtcError as error:
        return FeaturizeFailure(entry.structure_id, error.reason, str(error))
    except Exception as error:
        return FeaturizeFailure(
            entry.structure_id, "unexpected", f"{type(error).__name__}: {error}"
        )


def _featurize_pair(arguments: tuple[Any, int]):
    entry, exponent = arguments
    return featurize_entry(entry, exponent)


def featurize_entries(
    entries: Iterable[Any], exponent: int = DEFAULT_FEATURE_EXPONENT, workers: int = 1
) -> Iterator[list[FeatureRow] | FeaturizeFailure]:
    """Featurize entries in order, on ``workers`` processes (1: in this process).

    Yields:
        Per entry, its list of feature rows or a :class:`FeaturizeFailure`.
    """
    tasks = ((entry, exponent) for entry in entries)
    if workers <= 1:
        yield from map(_featurize_pair, tasks)
        return
    with get_context("forkserver").Pool(workers) as pool:
        yield from pool.imap(_featurize_pair, tasks, chunksize=8)
