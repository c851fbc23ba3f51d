"""matminer's site fingerprints of the absorber sites and the comparison's fingerprint variants.

The fingerprint (vtc_fw.science.site_fingerprints) on real structures: rock-salt NiO, cubic and
stretched, and the spinel Fe3O4 (one tetrahedral and two octahedral Fe per formula unit). The
comparison variants (vtc_fw.ml.comparison) on the real feature rows of the first OQMD-ICSD
structures of the session fixture ``table`` (target: the OQMD band gap, NOT SAMS) joined with
the real fingerprints of their records; scripts/compare_models.py --site-fingerprints on the
recorded FEFF10 tasks of tests/test_builders.py (stretched NiO and CoO, real SAMS). Needs the
``anchor`` extra (matminer); without it only the message test runs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from oqmd_table import SWEEP
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp
from test_builders import build_recorded_labels
from test_model_comparison import TINY_SPACES, _script, compare

from vtc_fw.app import site_fingerprints as app_fingerprints
from vtc_fw.app.distortion import nio_structure
from vtc_fw.errors import UsageError
from vtc_fw.ml import comparison as model_comparison
from vtc_fw.ml.comparison import (
    CRYSTAL_COLUMNS,
    EXPONENT_FREE_FEATURES,
    VARIANTS,
    describe_features,
    feature_columns,
)
from vtc_fw.ml.table import at_exponent
from vtc_fw.science import site_fingerprints
from vtc_fw.science.features import FEATURE_COLUMNS
from vtc_fw.science.records import make_records
from vtc_fw.science.site_fingerprints import (
    MISSING_EXTRA,
    record_site_fingerprints,
    site_fingerprint,
    site_fingerprint_columns,
)
from vtc_fw.sources.oqmd import iter_oqmd_icsd

needs_matminer = pytest.mark.skipif(
    importlib.util.find_spec("matminer") is None,
    reason="the anchor extra (matminer) is not installed: pip install -e '.[anchor]'",
)
FINGERPRINT_VARIANTS = [name for name in VARIANTS if "site_fingerprint" in name]
N_STRUCTURES = 40
"""OQMD-ICSD structures whose records get fingerprints for the comparison tests (of 150)."""


def fingerprints(structure: Structure) -> dict[str, float]:
    """The fingerprint of the first record of a structure."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return record_site_fingerprints(make_records(structure, "test")[0])


def spinel_fe3o4() -> Structure:
    """Primitive Fe3O4 spinel (Fd-3m, origin choice 1): Fe 8a tetrahedral, 16d octahedral."""
    lattice = Lattice.cubic(8.396)
    positions = [[0, 0, 0], [0.625, 0.625, 0.625], [0.3799, 0.3799, 0.3799]]
    conventional = Structure.from_spacegroup("Fd-3m", lattice, ["Fe", "Fe", "O"], positions)
    return conventional.get_primitive_structure()


def test_without_matminer_the_message_names_the_extra(monkeypatch):
    site_fingerprints.crystalnn_fingerprint.cache_clear()
    monkeypatch.setitem(sys.modules, "matminer.featurizers.site", None)
    with pytest.raises(UsageError, match=r"\[anchor\]") as error:
        site_fingerprint_columns()
    assert str(error.value) == MISSING_EXTRA
    site_fingerprints.crystalnn_fingerprint.cache_clear()


@needs_matminer
def test_cubic_nio_is_a_perfect_octahedron_and_stretching_lowers_it():
    cubic, stretched = fingerprints(nio_structure(0)), fingerprints(nio_structure(5))
    assert list(cubic) == site_fingerprint_columns()
    assert len(cubic) == 61
    assert all(0 <= value <= 1 + 1e-9 for value in cubic.values())
    assert cubic["sitefp_wt_cn_6"] == pytest.approx(1)
    assert cubic["sitefp_octahedral_cn_6"] == pytest.approx(1)
    assert cubic["sitefp_tetrahedral_cn_4"] == 0
    assert stretched["sitefp_octahedral_cn_6"] < cubic["sitefp_octahedral_cn_6"] - 0.01


@needs_matminer
def test_spinel_averages_one_tetrahedral_and_two_octahedral_sites():
    structure = spinel_fe3o4()
    columns = fingerprints(structure)
    iron = [i for i, site in enumerate(structure) if site.specie.symbol == "Fe"]
    every_site = np.mean([site_fingerprint(structure, i) for i in iron], axis=0)
    assert len(iron) == 6
    assert np.allclose(list(columns.values()), every_site, atol=1e-9)
    coordination = {name: v for name, v in columns.items() if name.startswith("sitefp_wt_cn_")}
    assert sum(coordination.values()) == pytest.approx(1)  # CN probabilities of every site
    assert columns["sitefp_wt_cn_6"] == pytest.approx(4 / 6, abs=1e-3)
    assert columns["sitefp_wt_cn_4"] == pytest.approx(2 / 6, abs=0.02)
    assert columns["sitefp_tetrahedral_cn_4"] == pytest.approx(2 / 6, abs=0.02)


@needs_matminer
def test_rigid_rotation_and_translation_change_no_fingerprint():
    for structure in (nio_structure(3), spinel_fe3o4()):
        moved = structure.copy()
        moved.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 3], 37, False))
        moved.translate_sites(range(len(moved)), [0.13, 0.29, 0.41])
        before, after = fingerprints(structure), fingerprints(moved)
        assert np.allclose(list(before.values()), list(after.values()), atol=1e-9)


@pytest.fixture(scope="module")
def fingerprint_table(table):
    """The usable rows of the first ``N_STRUCTURES`` structures of ``table``, fingerprints added."""
    rows = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for entry in iter_oqmd_icsd(limit=N_STRUCTURES):
            try:
                records = make_records(entry.structure, entry.structure_id)
            except Exception:
                continue
            rows.update({record.key: record_site_fingerprints(record) for record in records})
    usable = table.dropna(subset=[*FEATURE_COLUMNS, "sams"])  # as the comparison's rows
    frame = usable[usable["key"].isin(rows)].reset_index(drop=True)
    fingerprint = pd.DataFrame.from_dict(rows, orient="index").loc[frame["key"]]
    return pd.concat([frame, fingerprint.reset_index(drop=True)], axis=1)


@needs_matminer
def test_fingerprint_variants_run_only_when_every_row_has_the_columns(fingerprint_table):
    fingerprint_table = at_exponent(fingerprint_table, SWEEP[-1])  # the crystal sums, as swept
    columns = site_fingerprint_columns()
    assert feature_columns("rf_site_fingerprint", fingerprint_table) == columns
    paper_five = feature_columns("rf_site_fingerprint_paper", fingerprint_table)
    assert paper_five == [*EXPONENT_FREE_FEATURES, *columns]
    crystal = feature_columns("rf_crystal_site_fingerprint", fingerprint_table)
    assert crystal == [*CRYSTAL_COLUMNS, *columns]
    assert describe_features(columns) == "site fingerprint 61"
    assert describe_features(paper_five) == "paper 5 + site fingerprint 61 (66)"
    assert describe_features(crystal) == "crystal 8 + site fingerprint 61 (69)"
    partial = fingerprint_table.copy()
    partial.loc[partial.index[0], columns[0]] = np.nan
    without = fingerprint_table.drop(columns=columns)
    for name in FINGERPRINT_VARIANTS:
        assert feature_columns(name, partial) is None
        assert feature_columns(name, without) is None
    assert feature_columns("rf_crystal", without) == list(CRYSTAL_COLUMNS)


@needs_matminer
def test_fingerprint_forest_fits_what_only_the_fingerprint_shows(fingerprint_table):
    """Target = the octahedral order of the absorber (a real fingerprint column, not SAMS): the
    paper's features see it only through the moment sums, the fingerprint variants hold it."""
    frame = fingerprint_table.copy()
    frame["sams"] = frame["sitefp_octahedral_cn_6"]
    result = compare(frame)
    names = [v.name for v in result.variants]
    assert names[-3:] == FINGERPRINT_VARIANTS
    assert [score.name for score in result.repeated_cv] == names
    paired = {score.name: score for score in result.repeated_cv}
    for name in FINGERPRINT_VARIANTS:
        assert result.variant(name).r2_test > result.variant("paper").r2_test, name
        assert paired[name].diff_mean > 0, name
    without = compare(frame.drop(columns=site_fingerprint_columns()), cv_repeats=0)
    assert not set(FINGERPRINT_VARIANTS) & {v.name for v in without.variants}


@needs_matminer
def test_script_computes_caches_and_joins_fingerprints(db_config, tmp_path, monkeypatch, capsys):
    build_recorded_labels(db_config)
    monkeypatch.setattr(model_comparison, "default_search_spaces", lambda: dict(TINY_SPACES))
    cache, script = tmp_path / "fingerprints.json", _script()
    variants = "rf_site_fingerprint,rf_site_fingerprint_paper"
    options = [
        *("--db-file", str(db_config.write_db_json(tmp_path / "db.json"))),
        *("--n-iter", "1", "--cv", "2", "--cv-repeats", "2", "--variants", variants),
        *("--site-fingerprints", str(cache)),
    ]
    script.main([*options, "--json", str(tmp_path / "first.json")])
    assert "site fingerprints of 12 records, 0 without" in capsys.readouterr().err
    stored = json.loads(cache.read_text())["records"]
    assert len(stored) == 12
    for key, columns in stored.items():
        assert list(columns) == site_fingerprint_columns()
        assert columns["sitefp_wt_cn_6"] > 0.9, key  # rock salt, stretched by at most 5 %
    first = json.loads((tmp_path / "first.json").read_text())
    assert [v["name"] for v in first["variants"]] == ["paper", *variants.split(",")]

    def not_again(*arguments):
        raise AssertionError("the cached fingerprints were computed again")

    monkeypatch.setattr(app_fingerprints, "fingerprints_from_database", not_again)
    script.main([*options, "--json", str(tmp_path / "again.json")])
    assert json.loads((tmp_path / "again.json").read_text()) == first
    cache.write_text(json.dumps({"fingerprint": "SOAP", "records": stored}))
    with pytest.raises(SystemExit):
        script.main(options)
    assert "holds 'SOAP'" in capsys.readouterr().err
