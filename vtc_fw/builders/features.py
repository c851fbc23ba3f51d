"""FeatureBuilder: ``structures`` → ``features``, one document per (structure, element) record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from maggma.core import Builder, Store
from pymatgen.core import Structure

from vtc_fw.builders.incremental import (
    as_utc,
    newest_by,
    query_by_keys,
    remove_by_keys,
    stale_keys,
)
from vtc_fw.documents.base import BuilderMeta
from vtc_fw.documents.features import FeatureDocument
from vtc_fw.errors import StructureError
from vtc_fw.science.coordination import FIRST_SHELL_FEATURES
from vtc_fw.science.features import (
    CRYSTAL_SUMS,
    DEFAULT_FEATURE_EXPONENT,
    SWEEP_EXPONENTS,
    featurize_record,
)
from vtc_fw.science.oxidation import OxidationResult
from vtc_fw.science.records import make_records


class FeatureBuilder(Builder):
    """Featurize every record of every new or changed structure.

    Each document holds the paper's features at ``exponent`` and the exponent-dependent sums
    (QAMS, DAMS, IAMS) at every exponent of ``sweep_exponents``, so that the
    :class:`~vtc_fw.builders.train.TrainBuilder` can choose the exponent on labelled data.
    A structure that yields no record (disordered, no 3d metal...) gets one failed document
    keyed by its ``structure_id``; a record that cannot be featurized gets a failed document
    under its record key. Rebuilding a structure upserts its documents (no record is ever
    missing meanwhile) and then deletes those it no longer yields. A structure is
    rebuilt when its document is newer than its features, or when its features were built
    with other parameters (exponents, or the descriptor set of an older vtc-fw).

    Args:
        structures: Source store (key ``structure_id``, field ``structure``: pymatgen dict;
            optional ``oxidation``: states stored at ingestion, reused instead of recomputed).
        features: Target store (key ``record_key``).
        exponent: Feature exponent of the flat feature fields.
        sweep_exponents: Exponents whose moment sums are stored for the sweep.
        query: Extra filter on the structures.
        chunk_size: Structures whose documents are written per database round trip.
    """

    parallel_items = True
    """Structures are featurized independently: ``run_builders`` may spread them over processes."""

    def __init__(
        self,
        structures: Store,
        features: Store,
        exponent: int = DEFAULT_FEATURE_EXPONENT,
        sweep_exponents: tuple[int, ...] = SWEEP_EXPONENTS,
        query: dict[str, Any] | None = None,
        chunk_size: int = 200,
        **kwargs: Any,
    ) -> None:
        self.structures = structures
        self.features = features
        self.exponent = exponent
        self.sweep_exponents = tuple(sweep_exponents)
        self.query = query or {}
        self.documents_written = 0
        super().__init__(sources=[structures], targets=[features], chunk_size=chunk_size, **kwargs)

    def ensure_indexes(self) -> None:
        """Indexes the incremental queries and screening use."""
        self.structures.ensure_index("structure_id", unique=True)
        self.structures.ensure_index(self.structures.last_updated_field)
        for field in ("record_key", "structure_id", "element", "state", "in_domain"):
            self.features.ensure_index(field)

    def get_items(self) -> Iterator[dict[str, Any]]:
        """Structure documents newer than their features (or never featurized)."""
        self.ensure_indexes()
        source = newest_by(self.structures, "structure_id", self.query)
        target = newest_by(self.features, "structure_id", parameters=self.parameters())
        keys = stale_keys(source, target)
        self.logger.info(f"{len(keys)} new or changed structures (or built with other parameters)")
        self.total = len(keys)
        yield from query_by_keys(self.structures, "structure_id", keys)

    def process_item(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        """Feature documents of every record of one structure (pure, no database)."""
        structure_id = item["structure_id"]
        last_updated = as_utc(item[self.structures.last_updated_field])
        meta = BuilderMeta(builder=type(self).__name__, parameters=self.parameters())
        try:
            if item.get("structure") is None:
                raise StructureError(
                    f"{structure_id} has no readable structure: {item.get('error')}",
                    reason="unreadable",
                )
            stored = item.get("oxidation")
            records = make_records(
                Structure.from_dict(item["structure"]),
                structure_id,
                oxidation=None if stored is None else OxidationResult.from_dict(stored),
            )
        except Exception as error:  # any unusable structure becomes a failed document
            failure = FeatureDocument.from_error(
                error,
                structure_id=structure_id,
                element=None,
                last_updated=last_updated,
                builder_meta=meta,
            )
            return [failure.model_dump()]
        documents = []
        for record in records:
            try:
                document = FeatureDocument.from_record(
                    record,
                    featurize_record(record, self.exponent),
                    sweep_exponents=self.sweep_exponents,
                    last_updated=last_updated,
                    builder_meta=meta,
                )
            except Exception as error:  # one bad record must not lose the others
                document = FeatureDocument.from_error(
                    error,
                    structure_id=structure_id,
                    element=record.element,
                    last_updated=last_updated,
                    builder_meta=meta,
                )
            documents.append(document.model_dump())
        return documents

    def parameters(self) -> dict[str, Any]:
        """The settings stored in ``builder_meta.parameters``; other values trigger a rebuild."""
        return {
            "exponent": self.exponent,
            "sweep_exponents": list(self.sweep_exponents),
            "first_shell": list(FIRST_SHELL_FEATURES),
            "crystal_sums": list(CRYSTAL_SUMS.values()),
        }

    def update_targets(self, items: list[list[dict[str, Any]]]) -> None:
        """Upsert the documents of each rebuilt structure, then drop those it no longer yields.

        Each document is replaced in one atomic upsert, so a concurrent reader (training,
        screening) never finds a rebuilt structure without its records; only documents of
        records a structure stopped yielding (e.g. its earlier failure) are deleted, after
        their successors are in.
        """
        documents = [document for documents in items for document in documents]
        if not documents:
            return
        self.features.update(documents, key="record_key")
        self.documents_written += len(documents)
        written = {document["record_key"] for document in documents}
        structure_ids = sorted({document["structure_id"] for document in documents})
        stored = query_by_keys(
            self.features, "structure_id", structure_ids, properties=["record_key"]
        )
        stale = sorted({document["record_key"] for document in stored} - written)
        remove_by_keys(self.features, "record_key", stale)


def records_without_structure(xes: Store, structures: Store) -> list[str]:
    """Record keys of the ``xes`` documents whose structure is not in ``structures`` (sorted).

    Such records (e.g. imported from an export without structures) get no features, so they
    can neither train a model nor be predicted.
    """
    stored = set(structures.distinct("structure_id"))
    labelled = xes.query(properties=["record_key", "structure_id"])
    return sorted(doc["record_key"] for doc in labelled if doc.get("structure_id") not in stored)


def missing_structures_message(count: int) -> str:
    """The one line that says why ``count`` labelled records got no features, and the cure."""
    return (
        f"{count} xes records have no structure document, so no features: they are neither "
        "trained on nor predicted. `vtc-fw import FILE` fills OQMD-ICSD and AMCSD structures "
        "from the shipped sources (import again if already imported); others need an export "
        "made with structures"
    )
