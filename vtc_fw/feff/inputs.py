"""FEFF10 input set for polarized K-edge VtC-XES of one absorbing site.

The cluster is rotated into the record's basis V (FEFF coordinates are ``coords @ V``), so the
polarizations along the basis axes are FEFF's x, y and z. The absorber is potential 0, every other
atom a potential by element (the absorber's element elsewhere gets its own). SCF and FMS radii
follow the site's shell radius; the settings come from a named preset in ``presets.yaml``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from monty.json import MSONable
from pymatgen.core import Element

from vtc_fw.science.clusters import Cluster
from vtc_fw.settings import DEFAULT_PRESET

PRESET_FILE = "presets.yaml"
SETTINGS_COMMENT = "* vtc-fw settings:"
"""Comment line (ignored by FEFF) that carries the preset settings and shell radius."""
ALL_MODULES = "1 1 1 1 1 1"
"""CONTROL line running every FEFF module (pot, xsph, fms, paths, genfmt, ff2x)."""


@cache
def _load_presets() -> dict[str, dict[str, Any]]:
    text = files("vtc_fw.feff").joinpath(PRESET_FILE).read_text()
    return yaml.safe_load(text)


PRESETS: dict[str, dict[str, Any]] = _load_presets()
"""Named FEFF settings (``paper``, ``fast``, ``smoke``), read from ``presets.yaml``."""


def preset_settings(preset: str | dict[str, Any]) -> dict[str, Any]:
    """A deep copy of a preset's settings; a dict is taken as settings already.

    Raises:
        KeyError: If the name is not a known preset.
    """
    if isinstance(preset, dict):
        return copy.deepcopy(preset)
    if preset not in PRESETS:
        raise KeyError(f"unknown FEFF preset {preset!r}; known: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[preset])


@dataclass
class XesInputSet(MSONable):
    """FEFF10 input for one absorbing site and (optionally) one linear polarization.

    Attributes:
        species: Element symbols, absorber first.
        coords: Positions in the FEFF frame (the record's basis), shape (N, 3), Å.
        shell_radius: The site's shell radius, Å: SCF and FMS radii are fractions of it.
        settings: Preset settings (see ``presets.yaml``).
        polarization: Unit polarization vector in the FEFF frame, or None (isotropic).
        title: Free text written as TITLE lines.
    """

    species: list[str]
    coords: np.ndarray
    shell_radius: float
    settings: dict[str, Any]
    polarization: np.ndarray | None = None
    title: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.species = list(self.species)
        self.coords = np.asarray(self.coords, dtype=float)
        if self.polarization is not None:
            vector = np.asarray(self.polarization, dtype=float)
            self.polarization = vector / np.linalg.norm(vector)

    @classmethod
    def from_cluster(
        cls,
        cluster: Cluster,
        basis: np.ndarray,
        preset: str | dict[str, Any] = DEFAULT_PRESET,
        polarization: np.ndarray | None = None,
        title: list[str] | None = None,
    ) -> XesInputSet:
        """Input set of a cluster rotated into ``basis``.

        Args:
            cluster: Atoms around the absorber (already listed to the wanted radius), Å.
            basis: 3×3, columns are the record's axes in the structure's Cartesian frame.
            preset: Preset name or settings dict.
            polarization: Unit vector in the FEFF (basis) frame, or None.
            title: TITLE lines.
        """
        return cls(
            species=list(cluster.species),
            coords=np.asarray(cluster.coords) @ np.asarray(basis),
            shell_radius=float(cluster.shell_radius),
            settings=preset_settings(preset),
            polarization=polarization,
            title=list(title or []),
        )

    def with_polarization(self, polarization: np.ndarray) -> XesInputSet:
        """The same site with another polarization (FEFF frame)."""
        return XesInputSet(
            self.species, self.coords, self.shell_radius, self.settings, polarization, self.title
        )

    def with_scf(self, scf: dict[str, Any] | None) -> XesInputSet:
        """The same input with the SCF settings replaced (None: no SCF)."""
        settings = copy.deepcopy(self.settings)
        settings["scf"] = scf
        return XesInputSet(
            self.species, self.coords, self.shell_radius, settings, self.polarization, self.title
        )

    @property
    def potentials(self) -> list[tuple[int, str]]:
        """``(ipot, element)``: 0 the absorber, then one per element in order of distance."""
        elements = list(dict.fromkeys(self.species[1:]))
        return [(0, self.species[0])] + [(i + 1, s) for i, s in enumerate(elements)]

    @property
    def cards(self) -> dict[str, str]:
        """The FEFF cards other than POTENTIALS/ATOMS, as ``{name: arguments}``."""
        return self.cards_with_control(ALL_MODULES)

    def cards_with_control(self, control: str) -> dict[str, str]:
        """The cards with a given CONTROL line (which FEFF modules an external FEFF runs)."""
        s = self.settings
        emin, emax, estep = s["xes"]
        cards = {
            "EDGE": str(s["edge"]),
            "S02": f"{s['s02']:g}",
            "COREHOLE": str(s["corehole"]),
            "CONTROL": control,
            "PRINT": "0 0 0 0 0 0",
            "XES": f"{emin:g} {emax:g} {estep:g}",
        }
        if s.get("scf"):
            scf = s["scf"]
            radius = scf["radius"] * self.shell_radius
            cards["SCF"] = f"{radius:.4f} {scf['lfms']} {scf['nscf']} {scf['ca']:g} {scf['nmix']}"
        cards["FMS"] = f"{s['fms']['radius'] * self.shell_radius:.4f}"
        cards["RPATH"] = f"{s['rpath']:g}"
        if self.polarization is not None:
            cards["POLARIZATION"] = " ".join(f"{x:.8f}" for x in self.polarization)
        return cards

    def listed_atoms(self) -> tuple[list[str], np.ndarray]:
        """Species and FEFF-frame coordinates within shell radius + list margin."""
        limit = self.shell_radius + self.settings["list_margin"] + 1e-6
        keep = np.linalg.norm(self.coords, axis=1) <= limit
        return [s for s, k in zip(self.species, keep, strict=True) if k], self.coords[keep]

    def __str__(self) -> str:
        """The readable ``feff.inp`` text."""
        return self.to_str()

    def to_str(self, control: str = ALL_MODULES) -> str:
        """The readable ``feff.inp`` text with a given CONTROL line."""
        lines = [f"TITLE {t}" for t in self.title] or ["TITLE vtc-fw VtC-XES"]
        provenance = {"shell_radius": self.shell_radius, "settings": self.settings}
        lines.append(f"{SETTINGS_COMMENT} {json.dumps(provenance)}")
        lines += [f"{name:<13}{value}" for name, value in self.cards_with_control(control).items()]
        lines += ["", "POTENTIALS", "*   ipot   Z  element"]
        lines += [f"    {ipot:4d} {Element(el).Z:3d}  {el}" for ipot, el in self.potentials]
        lines += ["", "ATOMS", "*        x           y           z    ipot  tag     distance"]
        ipot_of = {el: ipot for ipot, el in self.potentials[1:]}
        species, coords = self.listed_atoms()
        for k, (el, xyz) in enumerate(zip(species, coords, strict=True)):
            ipot = 0 if k == 0 else ipot_of[el]
            distance = float(np.linalg.norm(xyz))
            x, y, z = xyz
            lines.append(f"  {x:11.6f} {y:11.6f} {z:11.6f} {ipot:4d}  {el:<4} {distance:10.5f}")
        lines.append("END")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_str(cls, text: str) -> XesInputSet:
        """Read a ``feff.inp`` written by :meth:`__str__` (the listed atoms only).

        Raises:
            ValueError: The text lacks the vtc-fw settings line or the ATOMS block.
        """
        lines = [line.strip() for line in text.splitlines()]
        provenance = next((ln for ln in lines if ln.startswith(SETTINGS_COMMENT)), None)
        if provenance is None or "ATOMS" not in lines:
            raise ValueError("not a feff.inp written by vtc-fw (no settings line or ATOMS)")
        stored = json.loads(provenance[len(SETTINGS_COMMENT) :])
        polarization = next(
            (ln.split()[1:4] for ln in lines if ln.startswith("POLARIZATION")), None
        )
        rows = [ln.split() for ln in lines[lines.index("ATOMS") + 1 :] if ln and ln[0] not in "*E"]
        return cls(
            species=[row[4] for row in rows],
            coords=np.array([[float(x) for x in row[:3]] for row in rows]),
            shell_radius=stored["shell_radius"],
            settings=stored["settings"],
            polarization=None if polarization is None else np.array(polarization, dtype=float),
            title=[ln[len("TITLE ") :] for ln in lines if ln.startswith("TITLE ")],
        )

    @classmethod
    def from_file(cls, path: str | Path) -> XesInputSet:
        """Read ``feff.inp`` (``path`` may be its directory); see :meth:`from_str`."""
        path = Path(path)
        return cls.from_str((path / "feff.inp" if path.is_dir() else path).read_text())

    def write_file(self, path: str | Path) -> Path:
        """Write ``feff.inp`` (``path`` may be a directory or a file name)."""
        path = Path(path)
        if path.is_dir():
            path = path / "feff.inp"
        path.write_text(str(self))
        return path

    def feff_input(self) -> Any:
        """The input as a ``feff10.FeffInput`` for the in-process pipeline."""
        import feff10

        return feff10.FeffInput.parse(str(self))

    def as_dict(self) -> dict[str, Any]:
        """JSON-able representation (MSONable)."""
        return {
            "@module": type(self).__module__,
            "@class": type(self).__name__,
            "species": self.species,
            "coords": self.coords.tolist(),
            "shell_radius": self.shell_radius,
            "settings": self.settings,
            "polarization": None if self.polarization is None else self.polarization.tolist(),
            "title": self.title,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> XesInputSet:
        """Inverse of :meth:`as_dict`."""
        kwargs = {k: v for k, v in d.items() if not k.startswith("@")}
        return cls(**kwargs)
