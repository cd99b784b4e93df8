"""erckit.evaluate and ``erckit evaluate``: metrics, unknown labels, data sources, plot, JSON."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from erckit.cli.main import main
from erckit.data.types import Dialogue, Utterance
from erckit.errors import DataError, ErckitError
from erckit.evaluate import evaluate, load_dialogues, plot_confusion, write_json
from tiny_models import LABELS, build_model, save_model, text_recipe

TURNS = [("A", "i love this", "joy"), ("B", "i hate this", "anger"), ("A", "whatever", "neutral"),
         ("B", "so happy", "joy"), ("A", "furious now", "anger"), ("B", "ok", "neutral")]


def dialogues(extra: list[tuple[str, str, str | None]] = []) -> list[Dialogue]:
    turns = TURNS + extra
    return [Dialogue("d1", tuple(Utterance(s, t, l) for s, t, l in turns[:3])),
            Dialogue("d2", tuple(Utterance(s, t, l) for s, t, l in turns[3:]))]


@pytest.fixture(scope="module")
def model():
    return build_model(text_recipe())


def test_metrics_agree_with_the_predictions(model) -> None:
    result = evaluate(model, dialogues())
    predicted = [p for d in result.predictions for p in d.utterances]
    correct = sum(p.label == p.gold for p in predicted)
    assert result.report.count == result.total == 6
    assert result.report.accuracy == pytest.approx(correct / 6)
    assert sum(map(sum, result.report.confusion)) == 6
    assert [c.support for c in result.report.per_class] == [2, 2, 2]
    assert result.excluded == 0


def test_unknown_labels_are_reported_and_excluded(model) -> None:
    with pytest.warns(UserWarning, match=r"2 utterance\(s\).*'sarcasm' \(2\)"):
        result = evaluate(model, dialogues([("C", "sure, great", "sarcasm"), ("C", "yeah right", "sarcasm"),
                                             ("C", "no label", None)]))
    assert result.unknown_labels == {"sarcasm": 2} and result.unlabelled == 1
    assert result.total == 9 and result.report.count == 6
    assert result.to_dict()["excluded"] == {"unknown_labels": {"sarcasm": 2}, "unlabelled": 1}


def test_nothing_to_score_is_a_clear_error(model) -> None:
    only_unknown = [Dialogue("d", (Utterance("A", "hm", "sarcasm"), Utterance("B", "hm", None)))]
    with pytest.warns(UserWarning), pytest.raises(DataError, match="nothing to score"):
        evaluate(model, only_unknown)


def write_jsonl(path: Path, turns=TURNS) -> Path:
    record = {"id": "d", "utterances": [{"speaker": s, "text": t, "label": l} for s, t, l in turns]}
    path.write_text(json.dumps(record) + "\n")
    return path


def test_load_dialogues_from_file_and_directory(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "test.jsonl")
    assert len(load_dialogues(tmp_path / "test.jsonl")[0]) == 6
    assert load_dialogues(tmp_path, "test")[0].id == "d"
    with pytest.raises(DataError, match="no split 'dev'.*available: test"):
        load_dialogues(tmp_path, "dev")
    with pytest.raises(DataError, match="no such file"):
        load_dialogues(tmp_path / "nope.jsonl")


def test_plot_and_json(model, tmp_path: Path) -> None:
    result = evaluate(model, dialogues())
    png = plot_confusion(result, tmp_path / "cm.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(write_json(result, tmp_path / "r.json").read_text())
    assert data["labels"] == LABELS and data["count"] == 6 and len(data["confusion"]) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_plot_without_matplotlib(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = evaluate(model, dialogues())
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(ErckitError, match="needs matplotlib") as error:
        plot_confusion(result, tmp_path / "cm.png")
    assert not (tmp_path / "cm.png").exists()
    # The hint names the extra that the README's quick-start install line installs.
    assert str(error.value).endswith('pip install "erckit[plot]"')


def test_cli_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model_dir = save_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "test.jsonl", TURNS + [("C", "meh", "sarcasm")])
    code = main(["evaluate", str(model_dir), str(data), "--plot", str(tmp_path / "cm.png"), "--json", str(tmp_path / "r.json")])
    out, err = capsys.readouterr()
    assert code == 0
    assert "weighted F1" in out and "confusion matrix" in out and "sarcasm (1)" in out
    assert "labels the model does not know" in err
    assert (tmp_path / "cm.png").exists()
    assert json.loads((tmp_path / "r.json").read_text())["excluded"]["unknown_labels"] == {"sarcasm": 1}


def test_cli_evaluate_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    model_dir = save_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "test.jsonl")
    assert main(["evaluate", str(model_dir), str(data), "--plot", str(tmp_path / "no" / "cm.png")]) == 1
    assert f"{tmp_path / 'no'} does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing"), str(data)]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["evaluate", str(model_dir), str(tmp_path), "--split", "dev"]) == 1
    assert "no split 'dev'" in capsys.readouterr().err


def test_nan_probabilities_are_refused_not_scored(model, tmp_path: Path, capsys: pytest.CaptureFixture,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from erckit.predict import Predictor

    run = Predictor.run

    def broken(self, samples):  # the model's output turns NaN, as broken weights would make it
        probabilities, present = run(self, samples)
        probabilities[2] = float("nan")
        return probabilities, present

    monkeypatch.setattr(Predictor, "run", broken)
    with pytest.raises(ErckitError, match="dialogue 'd1', utterance 2: the model gave non-finite probabilities"):
        evaluate(model, dialogues())
    model_dir = save_model(tmp_path / "m")
    data = write_jsonl(tmp_path / "test.jsonl")
    code = main(["evaluate", str(model_dir), str(data), "--json", str(tmp_path / "r.json")])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and "non-finite probabilities" in err
    assert not (tmp_path / "r.json").exists()


def test_labels_from_data_cannot_drive_the_terminal(model, capsys: pytest.CaptureFixture) -> None:
    """A gold label (or a model's label) with escape sequences or markup is shown cleaned and literally."""
    from rich.console import Console

    from erckit.evaluate import render

    with pytest.warns(UserWarning, match="labels the model does not know"):
        result = evaluate(model, dialogues([("C", "meh", "\x1b]0;pwned\x07[red]x[/]\x1b[2J")]))
    screen = Console(force_terminal=True, color_system="truecolor", width=200, record=True, highlight=False,
                     file=open(os.devnull, "w"))
    screen.print(render(result))
    shown = screen.export_text(styles=True)
    assert "\x1b]" not in shown and "\x07" not in shown and "\x1b[2J" not in shown and "pwned" not in shown
    assert "[red]x[/] (1)" in shown
