"""Structures from a directory of CIF, POSCAR/CONTCAR/*.vasp and pymatgen JSON files."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from vtc_fw.errors import SourceUnavailableError, StructureError
from vtc_fw.sources.entry import StructureEntry, structure_summary
from vtc_fw.sources.readers import (
    STRUCTURE_SUFFIXES,
    one_line,
    read_structure_file,
    shown_path,
    structure_file_format,
)

SOURCE = "cif-dir"
SAMPLE_DIR = Path(str(resources.files("vtc_fw") / "data" / "sample"))
"""Ten OQMD-ICSD structures bundled with vtc-fw, one per 3d element (see its README)."""


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


def iter_paths(paths: Iterable[str | Path]) -> Iterator[StructureEntry]:
    """Entries of structure files and directories, in the order given.

    A directory yields :func:`iter_directory`'s entries; anything else is read as one structure
    file (id ``"file:<stem>"``), and a file that cannot be read, a missing path included,
    yields an entry with ``error`` set: the batch goes on.
    """
    for path in map(Path, paths):
        if path.is_dir():
            yield from iter_directory(path)
        else:
            yield from _entries_from_file(path, _without_known_suffix(path.name))


def _entries_from_file(file: Path, name: str) -> Iterator[StructureEntry]:
    name = shown_path(name)  # an id stays one printable line whatever the file is called
    provenance: dict[str, Any] = {
        "path": str(file.absolute()),
        "format": structure_file_format(file),
    }
    try:
        structures, parser_warnings = read_structure_file(file)
        provenance["sha256"] = hashlib.sha256(file.read_bytes()).hexdigest()
    except (OSError, StructureError) as error:
        reason = getattr(error, "reason", "unreadable")
        message = f"{shown_path(file)}: {one_line(str(error))}"
        yield StructureEntry(f"file:{name}", None, SOURCE, provenance, message, reason)
        return
    for block, structure in enumerate(structures, start=1):
        structure_id = f"file:{name}" if len(structures) == 1 else f"file:{name}#{block}"
        details = {**provenance, "block": block, "warnings": parser_warnings}
        details |= structure_summary(structure)
        yield StructureEntry(structure_id, structure, SOURCE, details)
