"""The ``features`` collection: one document per record, the paper's model inputs.

Built by :class:`vtc_fw.builders.features.FeatureBuilder` from the ``structures`` collection.
The flat feature fields hold the values at one exponent (``exponent``); ``sweep`` holds the
exponent-dependent sums at every exponent of the paper's range so that training can choose
the exponent without featurizing again, with the crystal forms of the sums beyond the paper
(:data:`vtc_fw.keys.CRYSTAL_SUMS`); ``first_shell`` holds more descriptors beyond
the paper; both are for :mod:`vtc_fw.ml.comparison`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from vtc_fw.documents.base import BuilderMeta, Document, ErrorInfo, State, utc_now
from vtc_fw.keys import record_key
from vtc_fw.science.coordination import record_first_shell
from vtc_fw.science.features import FEATURE_COLUMNS, FeatureRow, moments_by_exponent, sweep_columns
from vtc_fw.science.records import Record


class FeatureDocument(Document):
    """Features of one (structure, element) record, or the reason they could not be made."""

    record_key: str = Field(
        description='Record key "{structure_id}:{element}"; the structure_id '
        "alone for a structure that gave no record."
    )
    structure_id: str = Field(description="Id of the structure in the structures collection.")
    element: str | None = Field(default=None, description="Absorbing 3d element X.")
    state: State = Field(default=State.SUCCESSFUL, description="Outcome of the featurization.")
    error: ErrorInfo | None = Field(
        default=None, description="type, reason and message of the failure (state failed)."
    )
    exponent: int | None = Field(
        default=None, description="Feature exponent n (weights r^-n) of QAMS, DAMS, IAMS below."
    )
    QAMS: float | None = Field(
        default=None, description="Quadrupole anisotropy sum (null: no charges)."
    )
    DAMS: float | None = Field(
        default=None, description="Dipole anisotropy sum (null: no charges)."
    )
    IAMS: float | None = Field(default=None, description="Inertia (geometric) anisotropy sum.")
    density: float | None = Field(default=None, description="Mass density, g/cm³.")
    spacegroup_norm: float | None = Field(default=None, description="Space-group number / 230.")
    n_d: float | None = Field(
        default=None, description="d-electron count Z − q − 18, site average."
    )
    en_mean: float | None = Field(
        default=None, description="Mean Pauling electronegativity of the cluster."
    )
    en_std: float | None = Field(
        default=None, description="Std of Pauling electronegativity of the cluster."
    )
    sweep: dict[str, dict[str, float | None]] = Field(
        default_factory=dict,
        description="QAMS, DAMS, IAMS and their crystal forms (QAMS_crystal...: sums of the "
        "site-averaged tensors, vtc_fw.keys.CRYSTAL_SUMS) at each feature exponent "
        'n, keyed by str(n): {"5": {...}}.',
    )
    first_shell: dict[str, float] = Field(
        default_factory=dict,
        description="Charge-free first-shell descriptors (vtc_fw.science.coordination: econ, "
        "bond_length, bond_distortion, off_centering, shell_anisotropy, "
        "ligand_en_difference), site-averaged; not inputs of the paper's model.",
    )
    in_domain: bool = Field(default=False, description="Inside the paper's training domain.")
    domain_notes: list[str] = Field(default_factory=list, description="Why out of domain.")
    formula: str | None = Field(default=None, description="Reduced formula.")
    spacegroup: int | None = Field(default=None, description="International space-group number.")
    oxidation_method: str | None = Field(
        default=None, description='"bvanalyzer", "oxi_state_guesses" or null (not assigned).'
    )
    basis_source: str | None = Field(default=None, description='"quadrupole" or "inertia".')
    last_updated: datetime = Field(
        default_factory=utc_now, description="last_updated of the source structure document."
    )
    builder_meta: BuilderMeta = Field(description="Provenance of this document.")

    @classmethod
    def from_record(
        cls,
        record: Record,
        row: FeatureRow,
        *,
        sweep_exponents: tuple[int, ...],
        last_updated: datetime,
        builder_meta: BuilderMeta,
    ) -> FeatureDocument:
        """The document of a featurized record, with the exponent sweep of its moment sums.

        Every field the row shares with the document is taken from the row by name (the row's
        ``basis`` and ``n_sites`` are not stored).
        """
        shared = {name: value for name, value in row.as_dict().items() if name in cls.model_fields}
        return cls(
            **shared,
            sweep=moments_by_exponent(record, sweep_exponents),
            first_shell=record_first_shell(record),
            last_updated=last_updated,
            builder_meta=builder_meta,
        )

    @classmethod
    def from_error(
        cls,
        error: BaseException,
        *,
        structure_id: str,
        element: str | None,
        last_updated: datetime,
        builder_meta: BuilderMeta,
    ) -> FeatureDocument:
        """A failure document: a structure (element None) or a record that was not featurized."""
        return cls(
            record_key=record_key(structure_id, element) if element else structure_id,
            structure_id=structure_id,
            element=element,
            state=State.FAILED,
            error=ErrorInfo.from_exception(error),
            domain_notes=[str(error)],
            last_updated=last_updated,
            builder_meta=builder_meta,
        )

    def training_row(self) -> dict[str, Any]:
        """The row this record contributes to a training table (without the target).

        Key, element, in_domain, features, ``QAMS@n`` columns and the first-shell descriptors
        (see :mod:`vtc_fw.ml.table`).
        """
        row: dict[str, Any] = {
            "key": self.record_key,
            "element": self.element,
            "in_domain": self.in_domain,
            "exponent": self.exponent,
        }
        row.update({name: getattr(self, name) for name in FEATURE_COLUMNS})
        row.update(sweep_columns(self.sweep))
        row.update(self.first_shell)
        return row
