"""The project's keys and column names: each built and parsed in exactly one place.

* record key ``"{structure_id}:{element}"``: one (structure, 3d absorber) pair;
* task key ``"{record_key}:{preset}"``: one FEFF calculation of a record;
* prediction key ``"{record_key}:{model_id}"``: one model's prediction for a record;
* sweep column ``"QAMS@9"`` (or ``"QAMS_crystal@9"``): a moment sum at feature exponent n.

Structure ids may contain ``:`` (``"oqmd-icsd:1502-3224-V2O5"``); elements, presets and model
ids never do, so keys are parsed from the right.
"""

import re

MOMENT_SUMS: tuple[str, ...] = ("QAMS", "DAMS", "IAMS")
"""The exponent-dependent moment sums, in the paper's order."""
CRYSTAL_SUFFIX = "_crystal"
"""Suffix of the crystal form of a moment sum (``QAMS_crystal``)."""
CRYSTAL_SUMS: dict[str, str] = {name: f"{name}{CRYSTAL_SUFFIX}" for name in MOMENT_SUMS}
"""Beyond the paper: each moment sum of the site average of the normalized tensors (in the
record's basis) instead of the site average of the sums. A crystal's spectrum for a polarization
is the sum over its sites, so sites whose anisotropies cancel give 0 here, as they do in SAMS:
the three tetragonal Sc sites of cubic Sc3GaC have IAMS 3.8 at n = 9 and a FEFF SAMS of 0."""

_SWEEP_COLUMN = re.compile(rf"^({'|'.join(MOMENT_SUMS)})({CRYSTAL_SUFFIX})?@(\d+)$")


def record_key(structure_id: str, element: str) -> str:
    """``"{structure_id}:{element}"``."""
    return f"{structure_id}:{element}"


def parse_record_key(key: str) -> tuple[str, str]:
    """``(structure_id, element)`` of a record key.

    Raises:
        ValueError: ``key`` has no ``:``.
    """
    structure_id, separator, element = key.rpartition(":")
    if not separator or not structure_id or not element:
        raise ValueError(f"not a record key (structure_id:element): {key!r}")
    return structure_id, element


def task_key(record_key: str, preset: str) -> str:
    """``"{record_key}:{preset}"``: the unique key of a task document."""
    return f"{record_key}:{preset}"


def prediction_key(record_key: str, model_id: str) -> str:
    """``"{record_key}:{model_id}"``: the unique key of a prediction document."""
    return f"{record_key}:{model_id}"


def sweep_column(name: str, exponent: int) -> str:
    """``"{name}@{exponent}"``, e.g. ``"QAMS@9"`` or ``"IAMS_crystal@5"``."""
    return f"{name}@{exponent}"


def parse_sweep_column(column: str) -> tuple[str, int] | None:
    """``(name, exponent)`` of a sweep column (``name`` keeps a crystal suffix); None otherwise."""
    match = _SWEEP_COLUMN.match(column)
    if match is None:
        return None
    return match.group(1) + (match.group(2) or ""), int(match.group(3))
