"""The field's standard local-environment descriptor of the absorber sites (pymatgen, matminer).

An outside anchor for the paper's hand-made moment features: matminer's CrystalNN site
fingerprint, preset ``"ops"`` with the settings of matminer's ``CrystalNNFingerprint_ops``
structure preset and of the Materials Project's structure similarity (``distance_cutoffs=None``,
``x_diff_weight=0``: neighbours by CrystalNN's purely geometric solid-angle weights). Per site it
gives 61 numbers: for each coordination number CN = 1–24 the CrystalNN probability that the site
has that CN (``wt CN_n``) and, for CN ≤ 12, that probability times each of pymatgen's local
order parameters of that CN (tetrahedral, octahedral, square planar, q2/q4/q6, ...). Like the
paper's sums it is averaged over the element's sites of the cell; unlike them it is
rotation-invariant per site, so it cannot see how differently oriented sites cancel in the
crystal's spectrum.

matminer is an optional dependency (``pip install -e '.[anchor]'``); it is imported only when a
fingerprint is computed.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import numpy as np
from pymatgen.core import Structure

from vtc_fw.errors import UsageError
from vtc_fw.science.records import Record

SITE_FINGERPRINT_PREFIX = "sitefp_"
"""Prefix of every fingerprint column of a training table."""

FINGERPRINT = "matminer CrystalNNFingerprint ops (distance_cutoffs=None, x_diff_weight=0)"
"""What the columns hold (stored with cached fingerprints, so no other descriptor is mixed in)."""

MISSING_EXTRA = "site fingerprints need matminer: pip install -e '.[anchor]'"


@cache
def crystalnn_fingerprint() -> Any:
    """The CrystalNN ``"ops"`` site fingerprint of matminer with the Materials Project's settings.

    Raises:
        UsageError: matminer (the ``anchor`` extra) is not installed.
    """
    try:
        from matminer.featurizers.site import CrystalNNFingerprint
    except ImportError as error:
        raise UsageError(MISSING_EXTRA) from error
    return CrystalNNFingerprint.from_preset("ops", distance_cutoffs=None, x_diff_weight=0)


def column_name(label: str) -> str:
    """Table column of a matminer feature label, e.g. ``wt CN_6`` → ``sitefp_wt_cn_6``."""
    return SITE_FINGERPRINT_PREFIX + re.sub(r"[^0-9a-z]+", "_", label.lower()).strip("_")


def site_fingerprint_columns() -> list[str]:
    """The fingerprint's column names, in matminer's order."""
    return [column_name(label) for label in crystalnn_fingerprint().feature_labels()]


def site_fingerprint(structure: Structure, index: int) -> np.ndarray:
    """The fingerprint of one site of a structure (61 values in [0, 1])."""
    return np.asarray(crystalnn_fingerprint().featurize(structure, index), dtype=float)


def record_site_fingerprints(record: Record) -> dict[str, float]:
    """The fingerprint of a record's absorber, averaged over all its sites of the cell.

    Symmetry-equivalent sites have equal fingerprints (the descriptor does not depend on
    orientation), so each inequivalent site is featurized once and weighted by its
    multiplicity: the mean over every X site, as the paper's moment sums are averaged.

    Returns:
        ``{column: value}`` for every column of :func:`site_fingerprint_columns`.
    """
    sites = record.absorber_sites
    per_site = np.array([site_fingerprint(record.structure, site.index) for site in sites])
    weights = np.array([site.multiplicity for site in sites], dtype=float)
    mean = weights @ per_site / weights.sum()
    return dict(zip(site_fingerprint_columns(), map(float, mean), strict=True))
