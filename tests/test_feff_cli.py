"""``vtc-fw sams`` and ``vtc-fw distortion`` with real FEFF10 (preset "smoke": plumbing only)."""

import csv
import json

import pytest
from click.testing import CliRunner

from vtc_fw.app.distortion import nio_structure
from vtc_fw.cli import main

pytestmark = pytest.mark.slow


def test_sams_command_prints_the_json_keys_of_the_interface(tmp_path):
    path = tmp_path / "NiO.cif"
    nio_structure(3.0).to(filename=str(path))
    result = CliRunner().invoke(
        main, ["sams", str(path), "--element", "Ni", "--preset", "smoke", "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {"SAMS", "SAM", "cpu_s", "stages"} <= set(summary)
    assert summary["SAMS"] > 0.005  # stretched along c: anisotropic
    assert summary["SAM"][0][1] < 1e-3 * summary["SAMS"]  # the two in-plane axes agree


def test_sams_command_reports_an_absent_element_as_an_error(tmp_path):
    path = tmp_path / "NiO.cif"
    nio_structure(0.0).to(filename=str(path))
    result = CliRunner().invoke(main, ["sams", str(path), "--element", "Fe", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["reason"] == "no_3d_metal"


def test_distortion_command_writes_table_and_plot(tmp_path):
    out = tmp_path / "fig3"
    args = ["distortion", "nio", "--steps", "0,4", "--preset", "smoke", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with (out / "nio_smoke.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [float(r["strain_percent"]) for r in rows] == [0.0, 4.0]
    cubic, stretched = (float(r["SAMS"]) for r in rows)
    assert cubic < 1e-3 < stretched
    assert float(rows[0]["QAMS"]) < 1e-9 < float(rows[1]["QAMS"])
    assert (out / "nio_smoke.png").stat().st_size > 1000
