"""Structures from a directory of CIF, POSCAR/CONTCAR/*.vasp and pymatgen JSON files."""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from pymatgen.core import Structure
from pymatgen.io.cif import CifParser
from pymatgen.io.vasp import Poscar

from vtc_fw.errors import SourceUnavailableError, StructureError
from vtc_fw.sources.entry import StructureEntry, structure_summary

SOURCE = "cif-dir"
SAMPLE_DIR = Path(str(resources.files("vtc_fw") / "data" / "sample"))
"""Ten OQMD-ICSD structures bundled with vtc-fw, one per 3d element (see its README)."""
CIF_OCCUPANCY_TOLERANCE = 1.05
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".json.gz", ".json")


def structure_file_format(path: Path) -> str | None:
    """``"cif"``, ``"poscar"`` or ``"json"`` from a file name; None for other files."""
    name = path.name.lower()
    if name.endswith(".cif"):
        return "cif"
    if name.endswith((".json", ".json.gz")):
        return "json"
    if name.startswith(("poscar", "contcar")) or name.endswith(".vasp"):
        return "poscar"
    return None


def parse_cif_text(text: str) -> tuple[list[Structure], list[str]]:
    """All structures of a CIF (one per readable data block) and pymatgen's parser warnings.

    Partially occupied sites are kept (a disordered Structure); the records layer decides.
    Site occupancies summing to at most 1.05 (rounding in published tables) are scaled to 1;
    larger sums make the block unreadable.

    Raises:
        StructureError: No block of the CIF gives a structure.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text, occupancy_tolerance=CIF_OCCUPANCY_TOLERANCE)
            structures = parser.parse_structures(primitive=False, on_error="warn")
        # pymatgen's CIF reader raises anything from ValueError to IndexError on malformed text
        except Exception as error:
            messages = _unique_messages(caught)
            detail = "; ".join([str(error), *messages])
            raise StructureError(f"unreadable CIF: {detail}", reason="unreadable") from error
    return structures, _unique_messages(caught)


def read_structure_file(path: Path) -> tuple[list[Structure], list[str]]:
    """The structures in one file and the reader's warnings.

    Raises:
        StructureError: The file cannot be read as its format.
        OSError: The file cannot be opened.
    """
    file_format = structure_file_format(path)
    if file_format == "cif":
        return parse_cif_text(path.read_text(errors="replace"))
    if file_format not in ("poscar", "json"):
        raise StructureError(f"not a structure file: {path.name}", reason="unreadable")
    try:
        if file_format == "poscar":
            structure = Poscar.from_file(path, check_for_potcar=False).structure
        else:
            structure = Structure.from_file(path)
    # pymatgen's readers raise anything from ValueError to IndexError on malformed files
    except Exception as error:
        raise StructureError(
            f"unreadable {file_format} file: {type(error).__name__}: {error}", "unreadable"
        ) from error
    return [structure], []


def iter_directory(path: str | Path, recursive: bool = False) -> Iterator[StructureEntry]:
    """Yield one entry per structure file (per structure, for multi-block CIFs) in a directory.

    Unreadable files yield an entry with ``error`` set instead of raising; disordered structures
    are yielded with ``provenance["ordered"] = False``. Other files (README, ...) are skipped.

    Ids are ``"file:<stem>"``; files in sub-directories use their relative path without suffix
    (``"file:sub/POSCAR"``), names shared by several files keep their suffix
    (``"file:NiO.cif"``, ``"file:NiO.json"``), and multi-block CIFs add ``"#<block number>"``.

    Args:
        path: The directory.
        recursive: Also read sub-directories.

    Raises:
        SourceUnavailableError: ``path`` is not a directory.
    """
    root = Path(path)
    if not root.is_dir():
        raise SourceUnavailableError(f"no directory at {root}", reason="missing_directory")
    candidates = root.rglob("*") if recursive else root.iterdir()
    files = sorted(p for p in candidates if p.is_file() and structure_file_format(p))
    names = _file_ids(root, files)
    for file in files:
        yield from _entries_from_file(file, names[file])


def iter_sample() -> Iterator[StructureEntry]:
    """The bundled sample of ten OQMD-ICSD structures (Sc to Zn; NiO rock salt, Cr2O3 corundum)."""
    return iter_directory(SAMPLE_DIR)


def _file_ids(root: Path, files: list[Path]) -> dict[Path, str]:
    """Stable ids: the relative path without suffix, unless two files share it."""
    stems = {file: _without_known_suffix(file.relative_to(root).as_posix()) for file in files}
    counts = Counter(stems.values())
    return {
        file: stem if counts[stem] == 1 else file.relative_to(root).as_posix()
        for file, stem in stems.items()
    }


def _without_known_suffix(name: str) -> str:
    """``sub/NiO.cif`` -> ``sub/NiO``; POSCAR-style names (``POSCAR.1.5GPa``) stay whole."""
    for suffix in STRUCTURE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _entries_from_file(file: Path, name: str) -> Iterator[StructureEntry]:
    file_format = structure_file_format(file)
    provenance: dict[str, Any] = {"path": str(file.resolve()), "format": file_format}
    try:
        provenance["sha256"] = hashlib.sha256(file.read_bytes()).hexdigest()
        structures, parser_warnings = read_structure_file(file)
    except (OSError, StructureError) as error:
        yield StructureEntry(f"file:{name}", None, SOURCE, provenance, error=f"{file}: {error}")
        return
    for block, structure in enumerate(structures, start=1):
        structure_id = f"file:{name}" if len(structures) == 1 else f"file:{name}#{block}"
        details = {**provenance, "block": block, "warnings": parser_warnings}
        details |= structure_summary(structure)
        yield StructureEntry(structure_id, structure, SOURCE, details)


def _unique_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return list(dict.fromkeys(str(warning.message) for warning in caught))
