"""Recipe loading: extends, ${VAR}, --set, schema and component validation, all errors at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from erckit.errors import ErckitError, RecipeError, UsageError
from erckit.recipe import load_recipe, parse_override

RECIPE = """\
# erckit train recipe.toml
[data]
dataset = "erckit.Demo.v1"
root = "${ERCKIT_TEST_ROOT:-demo-data}"
media_policy = "zero"

[model.encoders.text]
factory = "example.BagOfWords.v1"
dim = 16

[model.encoders.audio]
factory = "erckit.LogMelAudio.v1"
dim = 32

[model.fuser]
factory = "erckit.ConcatFuser.v1"

[[stages]]
name = "teacher"
kind = "supervised"
encoders = ["text"]
epochs = 2

[[stages]]
kind = "distill"
teacher = "text"
students = ["audio"]
losses = [{ factory = "erckit.KLDistill.v1", temperature = 3.0 }]

[[stages]]
kind = "fuse"
"""


@pytest.fixture
def recipe_file(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.toml"
    path.write_text(RECIPE)
    return path


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems_of(path: Path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    assert info.value.source == str(path)
    return info.value.problems


def test_valid_recipe_loads_with_defaults(recipe_file: Path, monkeypatch):
    monkeypatch.delenv("ERCKIT_TEST_ROOT", raising=False)
    recipe = load_recipe(recipe_file)
    assert recipe.data.dataset == "erckit.Demo.v1"
    # factory defaults filled in ([data] keys such as labels excluded)
    assert recipe.data.args == {
        "root": "demo-data", "seed": 0, "train_dialogues": 60, "dev_dialogues": 15, "test_dialogues": 20
    }
    assert recipe.data.media_policy == "zero" and recipe.data.num_workers == 0
    assert list(recipe.model.encoders) == ["text", "audio"]
    assert recipe.anchor == "text"
    assert recipe.model.encoders["text"].args == {"buckets": 1024, "dim": 16, "context": False}
    assert recipe.model.fuser is not None and recipe.model.fuser.args["hidden"] == 256
    assert [s.name for s in recipe.stages] == ["teacher", "distill", "fuse"]
    teacher, distill, fuse = recipe.stages
    assert teacher.kind == "erckit.Supervised.v1" and teacher.epochs == 2 and teacher.args == {"encoders": ["text"]}
    assert teacher.optimizer.factory == "erckit.AdamW.v1" and teacher.optimizer.args["lr"] == 1e-5
    assert teacher.scheduler.factory == "erckit.LinearSchedule.v1" and teacher.objective.factory == "erckit.CrossEntropy.v1"
    assert distill.kind == "erckit.Distill.v1"
    assert distill.args["losses"] == [{"factory": "erckit.KLDistill.v1", "weight": 1.0, "temperature": 3.0}]
    assert fuse.kind == "erckit.Fuse.v1" and fuse.args["encoders"] is None
    assert [t.factory for t in recipe.loggers] == ["erckit.JSONL.v1"]
    assert recipe.runtime.device == "auto"


def test_environment_variables(recipe_file: Path, monkeypatch):
    monkeypatch.setenv("ERCKIT_TEST_ROOT", "/data/elsewhere")
    assert load_recipe(recipe_file).data.args["root"] == "/data/elsewhere"


def test_environment_variable_without_default_must_be_set(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("ERCKIT_TEST_UNSET", raising=False)
    path = write(tmp_path, "r.toml", RECIPE.replace("${ERCKIT_TEST_ROOT:-demo-data}", "${ERCKIT_TEST_UNSET}/x"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("data -> root:") and "ERCKIT_TEST_UNSET is not set" in problems[0]
    monkeypatch.setenv("ERCKIT_TEST_UNSET", "/mnt")
    assert load_recipe(path).data.args["root"] == "/mnt/x"


def test_extends_merges_tables_and_replaces_arrays(tmp_path: Path, recipe_file: Path):
    child = write(tmp_path, "child.toml", """
extends = "recipe.toml"
seed = 7
[model.encoders.text]
dim = 4
[[stages]]
kind = "supervised"
encoders = ["text"]
""")
    recipe = load_recipe(child)
    assert recipe.seed == 7
    assert recipe.model.encoders["text"].factory == "example.BagOfWords.v1"  # inherited
    assert recipe.model.encoders["text"].args["dim"] == 4  # overridden
    assert "audio" in recipe.model.encoders
    assert [s.name for s in recipe.stages] == ["supervised"]  # arrays replace


def test_extends_with_another_factory_replaces_the_table(tmp_path: Path, recipe_file: Path):
    """The parent's BagOfWords arguments (buckets, context) mean nothing to LogMelAudio."""
    write(tmp_path, "parent.toml", RECIPE.replace("dim = 16\n", "dim = 16\nbuckets = 64\ncontext = true\n", 1))
    child = write(tmp_path, "child.toml", """
extends = "parent.toml"
[model.encoders.text]
factory = "erckit.LogMelAudio.v1"
n_mels = 40
""")
    recipe = load_recipe(child)
    text = recipe.model.encoders["text"]
    assert text.factory == "erckit.LogMelAudio.v1"
    assert text.args["n_mels"] == 40 and text.args["dim"] == 128  # its own default, not the parent's 16
    assert "buckets" not in text.args and "context" not in text.args


def test_extends_with_the_same_factory_still_merges(tmp_path: Path, recipe_file: Path):
    child = write(tmp_path, "child.toml", """
extends = "recipe.toml"
[model.encoders.text]
factory = "example.BagOfWords.v1"
buckets = 32
""")
    args = load_recipe(child).model.encoders["text"].args
    assert args["buckets"] == 32 and args["dim"] == 16  # dim inherited


def test_extends_with_another_dataset_replaces_data(tmp_path: Path, recipe_file: Path):
    child = write(tmp_path, "child.toml", """
extends = "recipe.toml"
[data]
dataset = "erckit.DialogueJSONL.v1"
root = "mine"
""")
    data = load_recipe(child).data
    assert data.dataset == "erckit.DialogueJSONL.v1"
    assert data.args == {"root": "mine"}  # the demo's seed/dialogue counts are gone
    assert data.media_policy == "error"  # the parent's "zero" went with its dataset


def test_extends_a_fifo_is_refused_without_waiting(tmp_path: Path):
    import os

    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    child = write(tmp_path, "child.toml", 'extends = "pipe.toml"\n')
    with pytest.raises(ErckitError) as info:
        load_recipe(child)  # before the fix this blocked forever waiting for a writer
    message = str(info.value)
    assert "\n" not in message
    assert "pipe.toml" in message and "child.toml" in message and "not a regular file" in message


def test_extends_a_device_is_refused_at_once(tmp_path: Path):
    child = write(tmp_path, "child.toml", 'extends = "/dev/zero"\n')
    with pytest.raises(ErckitError, match=r"^cannot read recipe /dev/zero \(extended by .*child.toml\): a device, not a regular file$"):
        load_recipe(child)


def test_extends_a_directory_is_refused(tmp_path: Path):
    (tmp_path / "folder.toml").mkdir()
    child = write(tmp_path, "child.toml", 'extends = "folder.toml"\n')
    with pytest.raises(ErckitError, match=r"folder.toml \(extended by .*child.toml\): a directory, not a regular file$"):
        load_recipe(child)


def test_recipe_larger_than_one_mib_is_refused(tmp_path: Path):
    big = write(tmp_path, "big.toml", "# padding\n" * (2**20 // 10 + 1))
    with pytest.raises(ErckitError, match="a recipe is at most 1,048,576"):
        load_recipe(big)


def test_extends_chain_depth_is_capped_at_32(tmp_path: Path, recipe_file: Path):
    depth = 32
    for i in range(1200):  # the chain that used to be a RecursionError
        write(tmp_path, f"r{i}.toml", f'extends = "r{i + 1}.toml"\n')
    write(tmp_path, "r1200.toml", 'extends = "recipe.toml"\n')
    problems = problems_of(tmp_path / "r0.toml")
    assert problems == [
        f"extends: more than {depth} files deep (at {tmp_path / f'r{depth}.toml'}); flatten the chain"
    ]
    # a chain within the cap loads
    write(tmp_path, f"r{depth - 2}.toml", 'extends = "recipe.toml"\n')  # r0 .. r30 + recipe.toml
    assert load_recipe(tmp_path / "r0.toml").data.dataset == "erckit.Demo.v1"


def test_extends_a_non_recipe_file_does_not_echo_its_content(tmp_path: Path):
    secret = write(tmp_path, "passwd", "root:x:0:0:root:/root:/bin/bash\nsecond line\n")
    child = write(tmp_path, "child.toml", f'extends = "{secret}"\n')
    with pytest.raises(ErckitError) as info:
        load_recipe(child)
    message = str(info.value)
    assert message == f"{secret} (extended by {child}) is not a recipe: not valid TOML (line 1)"
    assert "root:x" not in message


@pytest.mark.parametrize("value", ['"no"', '"yes"', "0", "1"])
def test_booleans_in_a_recipe_are_true_or_false(tmp_path: Path, value: str):
    """pydantic's lax bool read "no" as false and "yes"/1 as true; a file must say true or false."""
    path = write(tmp_path, "r.toml", RECIPE.replace("epochs = 2\n", f"epochs = 2\nclass_weights = {value}\n")
                 .replace("dim = 16\n", f"dim = 16\ncontext = {value}\n")
                 + f"\n[runtime]\ndeterministic = {value}\n")
    problems = problems_of(path)
    assert sorted(p.split(":")[0] for p in problems) == sorted([
        "stages -> teacher -> class_weights", "runtime -> deterministic", "model -> encoders -> text -> context"
    ])
    assert all("valid boolean" in p or "expected true or false" in p for p in problems)


def test_set_booleans_take_toml_true_and_false(recipe_file: Path):
    recipe = load_recipe(recipe_file, ["stages.teacher.class_weights=true", "model.encoders.text.context=true"])
    assert recipe.stages[0].objective.factory == "erckit.WeightedCrossEntropy.v1"
    assert recipe.model.encoders["text"].args["context"] is True
    assert "stages -> teacher -> class_weights" in problems_of(recipe_file, ["stages.teacher.class_weights=no"])[0]


def test_extends_relative_to_the_extending_file(tmp_path: Path, recipe_file: Path):
    sub = tmp_path / "sub"
    sub.mkdir()
    child = write(sub, "child.toml", 'extends = "../recipe.toml"\n')
    assert load_recipe(child).data.dataset == "erckit.Demo.v1"


def test_extends_cycle(tmp_path: Path):
    a = write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    write(tmp_path, "b.toml", 'extends = "a.toml"\n')
    problems = problems_of(a)
    assert len(problems) == 1 and "cycle" in problems[0]
    assert "a.toml" in problems[0] and "b.toml" in problems[0]


def test_extends_missing_parent(tmp_path: Path):
    a = write(tmp_path, "a.toml", 'extends = "nowhere.toml"\n')
    assert "nowhere.toml does not exist" in problems_of(a)[0]


def test_missing_file(tmp_path: Path):
    with pytest.raises(ErckitError, match="recipe file not found: .*absent.toml"):
        load_recipe(tmp_path / "absent.toml")


def test_toml_syntax_error_points_at_the_line(tmp_path: Path):
    path = write(tmp_path, "bad.toml", '[data]\ndataset = "erckit.Demo.v1"\nroot = \n')
    problems = problems_of(path)
    assert len(problems) == 1
    assert "TOML syntax error" in problems[0] and "line 3" in problems[0]
    assert "3 | root =" in problems[0]


def test_set_overrides_are_typed_and_address_stages_by_name(recipe_file: Path):
    recipe = load_recipe(recipe_file, [
        "stages.teacher.epochs=3",
        "stages.distill.lr=1e-4",          # an unnamed stage, addressed by its default name (its kind)
        "stages.2.batch_size=4",            # or by position
        "model.encoders.text.context=true",
        "data.root=/x/y",                  # a bare word is a string
        "runtime.device=cpu",
    ])
    assert recipe.stage("teacher").epochs == 3
    assert recipe.stage("distill").optimizer.args["lr"] == 1e-4
    assert recipe.stage("fuse").batch_size == 4
    assert recipe.model.encoders["text"].args["context"] is True
    assert recipe.data.args["root"] == "/x/y"
    assert recipe.runtime.device == "cpu"


def test_set_can_set_lists(recipe_file: Path):
    recipe = load_recipe(recipe_file, ['data.labels=["a", "b"]'])
    assert recipe.data.labels == ["a", "b"]


@pytest.mark.parametrize(
    "override, expected",
    [
        ("stages.teacher.epocs=3", "stages -> teacher -> epocs: unknown key (from --set). Did you mean 'epochs'?"),
        ("nope=1", "nope: unknown key (from --set)"),
        ("stages.nope.epochs=3", "no item 'nope' at stages.nope (have: teacher, distill, fuse)"),
        ("model.encoders.text.dimm=3", "model -> encoders -> text -> dimm: unknown argument of example.BagOfWords.v1. Did you mean 'dim'?"),
        ("stages.teacher.epochs=ten", "stages -> teacher -> epochs: Input should be a valid integer"),
        ("stages.teacher.epochs.x=1", "stages.teacher.epochs is not a table"),
    ],
)
def test_set_on_a_key_that_does_not_exist_or_wrong_type(recipe_file: Path, override: str, expected: str):
    problems = problems_of(recipe_file, [override])
    assert len(problems) == 1
    assert expected in problems[0]


@pytest.mark.parametrize("item", ["stages.teacher.epochs", "=3", ""])
def test_malformed_set_is_a_usage_error(item: str):
    with pytest.raises(UsageError) as info:
        parse_override(item)
    assert info.value.exit_code == 2


def test_parse_override_reads_toml_literals():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=1.5") == (["a"], 1.5)
    assert parse_override("a=false") == (["a"], False)
    assert parse_override('a="3"') == (["a"], "3")
    assert parse_override("a=[1, 2]") == (["a"], [1, 2])
    assert parse_override("a=hello world") == (["a"], "hello world")
    assert parse_override("a=x=y") == (["a"], "x=y")


def test_unknown_component_lists_available_names(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace("erckit.ConcatFuser.v1", "acme.Fancy.v1"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("model -> fuser -> factory: unknown fuser 'acme.Fancy.v1'")
    assert "erckit.ConcatFuser.v1" in problems[0] and "telme.ASF.v1" in problems[0]
    assert "pip install erckit-acme" in problems[0]


def test_unknown_dataset(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace("erckit.Demo.v1", "erckit.Demo.v9"))
    problems = problems_of(path)
    assert problems[0].startswith("data -> dataset: unknown dataset 'erckit.Demo.v9'")
    assert "erckit.Demo.v1" in problems[0]


def test_misspelled_key(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace("epochs = 2", "epoch = 2"))
    assert problems_of(path) == ["stages -> teacher -> epoch: unknown key. Did you mean 'epochs'?"]


def test_misspelled_component_argument(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace("temperature = 3.0", "temprature = 3.0"))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("stages -> distill -> losses -> 0 -> temprature: unknown argument of erckit.KLDistill.v1")
    assert "Did you mean 'temperature'?" in problems[0]


def test_wrong_type(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace("epochs = 2", 'epochs = "ten"'))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("stages -> teacher -> epochs: Input should be a valid integer")
    assert "'ten'" in problems[0]


def test_wrong_type_of_component_argument(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace("dim = 16", 'dim = "big"'))
    problems = problems_of(path)
    assert problems == [p for p in problems if p.startswith("model -> encoders -> text -> dim:")]
    assert len(problems) == 1


def test_missing_required_key(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace('teacher = "text"\n', ""))
    assert problems_of(path) == [
        'stages -> distill -> teacher: a distill stage needs a teacher (teacher = "text") or teachers = [...]'
    ]


def test_missing_required_component_argument(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace('"erckit.Demo.v1"\nroot = "${ERCKIT_TEST_ROOT:-demo-data}"', '"erckit.DialogueJSONL.v1"'))
    problems = problems_of(path)
    assert problems == ["data -> root: missing required argument of erckit.DialogueJSONL.v1"]


def test_injected_argument_cannot_be_set(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace("dim = 16", "num_classes = 3"))
    problems = problems_of(path)
    assert problems == ["model -> encoders -> text -> num_classes: set by erckit, not by the recipe (example.BagOfWords.v1)"]


def test_unknown_stage_kind(tmp_path: Path):
    path = write(tmp_path, "r.toml", RECIPE.replace('kind = "fuse"', 'kind = "fusion"'))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith("stages -> fusion -> kind: unknown stage kind 'fusion'.")
    assert "erckit.Fuse.v1" in problems[0] and "Short names: supervised, distill, fuse." in problems[0]


def test_cross_references(tmp_path: Path):
    text = RECIPE.replace('students = ["audio"]', 'students = ["video", "text"]').replace(
        '[[stages]]\nkind = "fuse"\n', '[[stages]]\nkind = "fuse"\nencoders = ["text", "visual"]\n'
    )
    problems = problems_of(write(tmp_path, "r.toml", text + '\n[runtime]\ndevice = "cpu"\n'))
    joined = "\n".join(problems)
    assert "stages -> distill -> students: the model has no encoder 'video' (have: text, audio)" in joined
    assert "stages -> distill -> students: 'text' cannot distil from itself" in joined
    assert "stages -> fuse -> encoders: the model has no encoder 'visual'" in joined


def test_fuse_stage_needs_trained_encoders_or_a_reason(tmp_path: Path):
    text = RECIPE.split("[[stages]]")[0] + '[[stages]]\nkind = "fuse"\n'
    problems = problems_of(write(tmp_path, "r.toml", text))
    assert len(problems) == 1 and "no earlier stage trained" in problems[0]
    ok = write(tmp_path, "ok.toml", text + 'untrained_encoders_reason = "pretrained encoders"\n')
    assert load_recipe(ok).stages[0].kind == "erckit.Fuse.v1"


def test_duplicate_stage_names(tmp_path: Path):
    text = RECIPE.replace('kind = "fuse"', 'kind = "fuse"\nname = "teacher"')
    problems = problems_of(write(tmp_path, "r.toml", text))
    assert problems == ["stages -> teacher: two stages share this name; give each a unique 'name'"]


def test_repeated_kinds_get_numbered_names(tmp_path: Path):
    text = RECIPE.split("[[stages]]")[0] + (
        '[[stages]]\nkind = "supervised"\nencoders = ["text"]\n'
        '[[stages]]\nkind = "supervised"\nencoders = ["audio"]\n'
    )
    recipe = load_recipe(write(tmp_path, "r.toml", text), ["stages.supervised2.epochs=5"])
    assert [s.name for s in recipe.stages] == ["supervised1", "supervised2"]
    assert recipe.stages[1].epochs == 5


def test_broken_recipe_reports_every_problem_at_once(tmp_path: Path):
    path = write(tmp_path, "broken.toml", """
[data]
dataset = "erckit.Demo.v1"
roott = "x"
media_policy = "sometimes"

[model.encoders.text]
factory = "example.BagOfWord.v1"

[model.encoders.audio]
factory = "erckit.LogMelAudio.v1"
n_mel = 3

[[stages]]
kind = "supervised"
encoders = ["text"]
epochs = "ten"
learning_rate = 1

[[stages]]
kind = "distill"
students = ["audio"]
""")
    problems = problems_of(path)
    joined = "\n".join(problems)
    for expected in (
        "data -> media_policy:",
        "stages -> supervised -> epochs: Input should be a valid integer",
        "stages -> supervised -> learning_rate: unknown key",
        "stages -> distill -> teacher: a distill stage needs a teacher",
        "data -> roott: unknown argument of erckit.Demo.v1. Did you mean 'root'?",
        "model -> encoders -> text -> factory: unknown encoder 'example.BagOfWord.v1'. Did you mean 'example.BagOfWords.v1'?",
        "model -> encoders -> audio -> n_mel: unknown argument of erckit.LogMelAudio.v1. Did you mean 'n_mels'?",
    ):
        assert expected in joined
    assert len(problems) == 7
    assert str(path) in str(RecipeError(str(path), problems)).splitlines()[0]


def test_recipe_validation_does_not_instantiate_components(tmp_path: Path, recipe_file: Path):
    """Loading only reads signatures: the demo dataset root is not created."""
    recipe = load_recipe(recipe_file, [f"data.root={tmp_path / 'never-created'}"])
    assert recipe.data.args["root"].endswith("never-created")
    assert not (tmp_path / "never-created").exists()


@pytest.mark.parametrize("name", ["a/b", "../up", "my.text", "C:x", "tab\there"])
def test_encoder_names_are_plain(tmp_path: Path, name: str):
    """An encoder name becomes a module name and the directory encoders/<name> of the saved model."""
    quoted = name.replace("\t", "\\t")
    path = write(tmp_path, "r.toml", RECIPE.replace("[model.encoders.audio]", f'[model.encoders."{quoted}"]').replace(
        'students = ["audio"]', f'students = ["{quoted}"]'))
    problems = problems_of(path)
    assert len(problems) == 1
    assert problems[0].startswith(f"model -> encoders -> {name} -> [key]: Value error, encoder name {name!r} cannot contain")


def test_duplicate_labels_are_refused(recipe_file: Path):
    problems = problems_of(recipe_file, ['data.labels=["joy", "sad", "joy"]'])
    assert len(problems) == 1 and problems[0].startswith("data -> labels:") and "duplicate label(s) 'joy'" in problems[0]
    assert any("empty" in p for p in problems_of(recipe_file, ["data.labels=[]"]))
