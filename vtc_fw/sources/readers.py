"""Read one structure file (CIF, POSCAR, pymatgen JSON) or say in one line what is wrong with it.

pymatgen's readers fail on malformed files with messages such as ``list index out of range``,
``'lattice'`` or ``Invalid CIF file with no structures!``. Every failure here is instead a
:class:`~vtc_fw.errors.StructureError` whose one-line message says what the file lacks: that it
is empty or binary, that a CIF's cell or atom sites are missing or impossible, that a POSCAR's
atom counts do not match its coordinates, that a JSON document is not a structure, that an
element symbol is unknown. Checks of the structure itself (lattice, sizes, overlaps) follow in
:mod:`vtc_fw.sources.geometry`.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

from pymatgen.core import DummySpecies, Structure
from pymatgen.io.cif import CifBlock, CifFile, CifParser
from pymatgen.io.vasp import Poscar

from vtc_fw.errors import Reason, StructureError

CIF_OCCUPANCY_TOLERANCE = 1.05
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".json.gz", ".json")
FORMATS_HELP = "a .cif, POSCAR/CONTCAR/*.vasp, .json or .json.gz file"
MAX_FILE_BYTES = 100 * 2**20
"""Largest structure file read (bytes): far above any crystal within the site limit."""
CELL_LENGTHS = ("_cell_length_a", "_cell_length_b", "_cell_length_c")
CELL_ANGLES = ("_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma")
SITE_COORDINATES = ("_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z")
UNKNOWN_ELEMENT = re.compile(r"'?([^' ]+)'? is not a valid Element")


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


def read_structure_file(path: Path) -> tuple[list[Structure], list[str]]:
    """The structures in one file and the reader's warnings.

    Raises:
        StructureError: The file is missing, not a file, empty, binary, of an unknown kind or
            unreadable as its format; the message is one line and does not repeat the path.
    """
    file_format = structure_file_format(path)
    data = _file_bytes(path)
    if file_format is None:
        raise StructureError(f"not a structure file: expected {FORMATS_HELP}", Reason.UNREADABLE)
    messages: list[str] = []
    if file_format == "json":
        structures = [_json_structure(data, path.name.lower().endswith(".gz"))]
    elif file_format == "cif":
        structures, messages = parse_cif_text(_text(data))
    else:
        structures = [_poscar_structure(_text(data))]
    for structure in structures:
        _check_elements(structure)
    return structures, messages


def _check_elements(structure: Structure) -> None:
    """Refuse placeholder species, which pymatgen makes of unknown symbols (``Xx``)."""
    for species in structure.composition:
        if isinstance(species, DummySpecies):
            raise StructureError(f"unknown element symbol {species.symbol!r}", Reason.UNREADABLE)


def parse_cif_text(text: str) -> tuple[list[Structure], list[str]]:
    """All structures of a CIF (one per readable data block) and pymatgen's parser warnings.

    Partially occupied sites are kept (a disordered Structure); the records layer decides.
    Site occupancies summing to at most 1.05 (rounding in published tables) are scaled to 1;
    larger sums make the block unreadable.

    Raises:
        StructureError: No block of the CIF gives a structure; the message says why.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            parser = CifParser.from_str(text, occupancy_tolerance=CIF_OCCUPANCY_TOLERANCE)
            structures = parser.parse_structures(primitive=False, on_error="warn")
        # pymatgen's CIF reader raises anything from ValueError to IndexError on malformed text
        except Exception as error:
            structures = []
            messages = [one_line(str(error)), *_unique_messages(caught)]
        else:
            messages = _unique_messages(caught)
    if not structures:
        reason, problem = _cif_problem(_cif_blocks(text), messages)
        raise StructureError(f"unreadable CIF: {problem}", reason)
    return structures, messages


def one_line(text: str) -> str:
    """A message on one line: whitespace runs, newlines included, become one space."""
    return shown_path(" ".join(str(text).split()))


def shown_path(path: str | Path) -> str:
    """A file name as printed in a message, control characters in their escaped form.

    A newline or a terminal escape sequence in a hostile name cannot break the one-line message.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(path))


def _file_bytes(path: Path) -> bytes:
    if not path.exists():
        raise StructureError("no such file", Reason.UNREADABLE)
    if not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise StructureError(f"is {kind}, not {FORMATS_HELP}", Reason.UNREADABLE)
    if path.stat().st_size > MAX_FILE_BYTES:
        size = path.stat().st_size / 2**20
        raise StructureError(
            f"is {size:.0f} MiB, more than the {MAX_FILE_BYTES // 2**20} MiB a structure file "
            "may have",
            Reason.TOO_LARGE,
        )
    data = path.read_bytes()
    if not data.strip():
        raise StructureError("is empty", Reason.EMPTY)
    return data


def _text(data: bytes) -> str:
    if b"\0" in data[:8192]:
        raise StructureError("is a binary file, not a text structure file", Reason.UNREADABLE)
    return data.decode("utf-8", errors="replace")


def _json_structure(data: bytes, compressed: bool) -> Structure:
    """A pymatgen Structure from JSON bytes (gzip-compressed for ``.json.gz``)."""
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise StructureError(f"is not gzip-compressed JSON: {error}", "unreadable") from error
    try:
        document = json.loads(_text(data))
    except ValueError as error:
        raise StructureError(f"is not valid JSON: {error}", Reason.UNREADABLE) from error
    if not isinstance(document, dict) or not {"lattice", "sites"} <= set(document):
        raise StructureError(
            "is JSON but not a pymatgen Structure (no 'lattice' and 'sites' keys)",
            Reason.UNREADABLE,
        )
    try:
        return Structure.from_dict(document)
    # a hand-edited document fails anywhere in pymatgen (KeyError, TypeError, ValueError...)
    except Exception as error:
        raise StructureError(
            f"is not a valid pymatgen Structure: {_reader_message(error)}", Reason.UNREADABLE
        ) from error


def _poscar_structure(text: str) -> Structure:
    try:
        return Poscar.from_str(text).structure
    # pymatgen's POSCAR reader raises anything from ValueError to IndexError on malformed text
    except Exception as error:
        detail = _poscar_count_problem(text) or _reader_message(error)
        raise StructureError(f"unreadable POSCAR: {detail}", Reason.UNREADABLE) from error


def _poscar_count_problem(text: str) -> str | None:
    """Whether the atom counts add up to more atoms than there are coordinate lines."""
    lines = [line.split() for line in text.splitlines()]
    counts_line = next(
        (i for i in (5, 6) if i < len(lines) and lines[i] and all(s.isdigit() for s in lines[i])),
        None,
    )
    if counts_line is None:
        return "no line of atom counts (line 6 or 7)"
    expected = sum(int(s) for s in lines[counts_line])
    start = counts_line + 1
    if start < len(lines) and lines[start] and lines[start][0][0] in "sS":
        start += 1  # "Selective dynamics"
    coordinates = [line for line in lines[start + 1 :] if len(line) >= 3 and _floats(line[:3])]
    if len(coordinates) < expected:
        return (
            f"its atom counts add up to {expected} but it has {len(coordinates)} coordinate "
            "lines (wrong counts or a cut-off file)"
        )
    return None


def _cif_blocks(text: str) -> list[CifBlock] | None:
    """The data blocks of a CIF, or None when its syntax is broken (a loop cut in a row)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the first parse already collected them
            return list(CifFile.from_str(text).data.values())
    # the tokenizer fails on broken quoting, loops and binary content in many ways
    except Exception:
        return None


def _cif_problem(blocks: list[CifBlock] | None, messages: list[str]) -> tuple[Reason, str]:
    """Why no block of a CIF gave a structure: the first block's problem, else pymatgen's."""
    if blocks is None:
        return Reason.UNREADABLE, "its CIF syntax is broken (a loop cut in a row: a cut-off file?)"
    for block in blocks:
        problem = _cif_block_problem(block)
        if problem is not None:
            return problem
    if any("exceeded tolerance" in message for message in messages):
        return Reason.OVERLAPPING_ATOMS, (
            "site occupancies add up to more than 1 at one position: overlapping atoms?"
        )
    if not blocks:
        return Reason.UNREADABLE, "no data block (not a CIF?)"
    detail = next((m for m in messages if "No structure parsed" not in m), None)
    return Reason.UNREADABLE, f"no structure in it ({_reader_message(detail or 'no reason given')})"


def _cif_block_problem(block: CifBlock) -> tuple[Reason, str] | None:
    """A missing or impossible cell, or missing or non-numeric atom sites, in one data block."""
    for key in (*CELL_LENGTHS, *CELL_ANGLES):
        if not str(block.data.get(key, "")).strip():
            return Reason.UNREADABLE, f"{key} is missing (a cut-off file?)"
        value = _number(block.data[key])
        if value is None or not math.isfinite(value):
            return Reason.NON_FINITE, f"{key} is {block.data[key]!r}, not a finite number"
        if value <= 0 or (key in CELL_ANGLES and value >= 180):
            return Reason.DEGENERATE_LATTICE, f"{key} is {value:g}: no crystal has that cell"
    if "_atom_site_type_symbol" not in block.data and "_atom_site_label" not in block.data:
        return Reason.UNREADABLE, "it has no atom sites (_atom_site_ loop missing: a cut-off file?)"
    for key in SITE_COORDINATES:
        column = block.data.get(key, [])
        for entry in [column] if isinstance(column, str) else column:
            number = _number(entry)
            if number is None or not math.isfinite(number):
                return Reason.NON_FINITE, f"an atom site's {key} is {entry!r}, not a number"
    return None


def _number(text: Any) -> float | None:
    """A CIF number (``4.2``, ``4.2(1)``), or None when it is not one."""
    try:
        return float(re.sub(r"\(\d+\)$", "", str(text)))
    except ValueError:
        return None


def _floats(parts: list[str]) -> bool:
    try:
        [float(part) for part in parts]
    except ValueError:
        return False
    return True


def _reader_message(error: Exception | str) -> str:
    """A pymatgen reader's failure in words: unknown elements named, one line."""
    text = str(error)
    unknown = UNKNOWN_ELEMENT.search(text)
    if unknown:
        return f"unknown element symbol {unknown.group(1)!r}"
    if isinstance(error, KeyError):
        return f"missing key {text}"
    return one_line(f"{type(error).__name__}: {text}" if isinstance(error, Exception) else text)


def _unique_messages(caught: list[warnings.WarningMessage]) -> list[str]:
    return list(dict.fromkeys(one_line(str(warning.message)) for warning in caught))
