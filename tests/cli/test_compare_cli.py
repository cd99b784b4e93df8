"""``erckit compare``: a table of runs with their recipe differences, PNG plots of the right size, an offline HTML report."""

from __future__ import annotations

import base64
import re
import struct
import sys
from pathlib import Path

import pytest

from erckit.cli.main import main
from erckit.experiments.compare import CURVE_PANEL, DPI, PER_CLASS, flatten
from tiny_runs import write_tiny_recipe


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_flatten_names_stages_as_set_does() -> None:
    flat = flatten({"seed": 1, "stages": [{"name": "teacher", "lr": 0.1}], "data": {"labels": ["a", "b"]}})
    assert flat == {"seed": 1, "stages.teacher.name": "teacher", "stages.teacher.lr": 0.1, "data.labels": ["a", "b"]}


@pytest.mark.slow
def test_compare_two_runs_writes_table_plots_and_html(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = write_tiny_recipe(tmp_path, tmp_path / "demo", epochs=2)
    common = ["--device", "cpu", "--threads", "1", "--no-progress"]
    assert main(["train", str(recipe), "-o", str(tmp_path / "runs" / "slow"), *common]) == 0
    assert main(["train", str(recipe), "-o", str(tmp_path / "runs" / "fast"), "--set", "stages.teacher.lr=0.1", *common]) == 0
    capsys.readouterr()

    report = tmp_path / "out" / "report.html"
    assert main(["compare", str(tmp_path / "runs" / "slow"), str(tmp_path / "runs" / "fast"), "-o", str(report)]) == 0
    table = capsys.readouterr().out
    assert "stages.teacher.optimizer.lr" in table  # the one recipe difference is a column
    assert "seed" not in table.split("\n")[1]  # keys the runs share are not
    assert "slow" in table and "fast" in table and "test wF1" in table

    curves, per_class = tmp_path / "out" / "report_curves.png", tmp_path / "out" / "report_per_class_f1.png"
    assert _png_size(curves) == (int(CURVE_PANEL[0] * DPI), int(CURVE_PANEL[1] * 2 * DPI))  # one stage: one column
    assert _png_size(per_class) == (int(PER_CLASS[0] * DPI), int(PER_CLASS[1] * DPI))
    page = report.read_text()
    embedded = [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert embedded == [curves.read_bytes(), per_class.read_bytes()]  # inline: the page opens offline on its own
    assert "report_curves.png" in page and "report_per_class_f1.png" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from the network
    assert page.count('class=diff') == 3  # header + two runs in the one differing column

    # a folder of runs stands for its runs; without -o only the table is printed, nothing written
    monkeypatch.chdir(tmp_path / "out")
    assert main(["compare", str(tmp_path / "runs")]) == 0
    table = capsys.readouterr().out
    assert "slow" in table and "fast" in table
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report_curves.png", "report_per_class_f1.png"]

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert main(["compare", str(tmp_path / "runs"), "-o", str(tmp_path / "again.html")]) == 1
    assert capsys.readouterr().err.strip() == 'error: compare plots need matplotlib: pip install "erckit[plot]"'


def test_compare_refuses_a_folder_that_holds_no_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(tmp_path)]) == 1
    assert "not a run folder" in capsys.readouterr().err
