"""The one registry of finetune methods: a method declared in one file is found by --method and its
help, a grid and agwm select; every --help builds without torch; the docs' table is the registry's."""

import json
import os
import re
import subprocess
import sys

import pytest
from torch import nn

from agwm.baselines.recipe import Recipe
from agwm.data import Task
from agwm.errors import ConfigError
from agwm.registry import METHODS, FinetuneMethod, methods_table, register_method, sections_for_schema
from tests.conftest import REPO, run_script, write_grid
from tests.test_own_data import user_files


class HeadOnly(Recipe):
    """A toy method: only the classification head trains."""

    def prepare(self, model: nn.Module, train_batches) -> nn.Module:
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name.startswith("classifier"))
        return model


TOY = FinetuneMethod("head-only", "only the classification head trains (a test's toy)",
                     recipe="tests.test_registry:HeadOnly", texts=(1,), why={"texts": "a toy of single texts"})


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(METHODS, TOY.name, TOY)  # registered for this test alone
    return TOY


def test_a_method_registered_in_a_test_file_is_in_the_help_a_grid_and_select(toy, glue_dir, tiny_model_dir,
                                                                                tmp_path, monkeypatch, capsys,
                                                                                quick_probe):
    from agwm.cli import main
    from agwm.experiments.grid import load_grid, read_records, run_grid
    from agwm.experiments.methods import selectable_methods
    from agwm.experiments.selection import selection_grid

    monkeypatch.setenv("COLUMNS", "10000")  # the help on one line
    with pytest.raises(SystemExit):
        main(["finetune", "--help"])
    assert "head-only (only the classification head trains (a test's toy))" in capsys.readouterr().out

    grid = write_grid(tmp_path, ["head-only", "vanilla"], tasks=["cola"],
                      overrides=["report_to=none", "finetune.epochs=1"], data_dir=glue_dir, model=tiny_model_dir)
    assert run_grid(load_grid(str(grid))) == (2, 0)
    scores = {r["method"]: r["score"] for r in read_records(str(tmp_path / "results.jsonl"))}
    assert set(scores) == {"head-only", "vanilla"} and all(s is not None for s in scores.values())
    trained = json.loads((tmp_path / "runs" / "head-only" / "cola-16-s1" / "finetune" / "metrics.json").read_text())
    assert trained["method"] == "head-only"

    assert "head-only" in selectable_methods()
    train, _ = user_files(tmp_path)
    task = {"name": "mine", "train_file": str(train), "text_columns": ["review"], "label_column": "sentiment"}
    planned = selection_grid(task, ["head-only", "vanilla"], 2, str(tmp_path / "select"), [])
    assert sorted({run.entry.method for run in planned.runs()}) == ["head-only", "vanilla"]


def test_a_registered_method_is_refused_for_the_tasks_it_does_not_take(toy, glue_dir, tmp_path, monkeypatch, capsys):
    pair = Task("pairs", ("a", "b"), "label", ("no", "yes"), "accuracy")
    assert toy.task_error(pair).startswith("--method head-only is not allowed with two text columns: a toy of "
                                           "single texts; vanilla")
    code, err = run_script("finetune.py", ["--task", "mrpc", "--data-dir", glue_dir, "--method", "head-only",
                                           "--output-dir", str(tmp_path / "out")], monkeypatch, capsys)
    assert code == 2 and "--method head-only is not allowed with two text columns" in err
    assert not (tmp_path / "out").exists()


def test_the_registry_refuses_a_second_name_and_settings_after_the_schema(toy):
    import dataclasses

    with pytest.raises(ValueError, match="already registered"):
        register_method(TOY)

    @dataclasses.dataclass
    class Late:
        x: int = 1

    with pytest.raises(ValueError, match="registers before agwm.config"):
        register_method(FinetuneMethod("late", "too late", recipe="x:y", settings=("late", Late)))
    with pytest.raises(ValueError, match="recipe or fit"):
        FinetuneMethod("neither", "no way to run")
    assert "late" not in METHODS


def test_each_methods_settings_are_checked_by_its_own_section():
    from agwm.settings import build_run_config

    for override, message in (("mixout.p=1.5", "mixout.p=1.5 is not allowed: in [0, 1)"),
                              ("dps.target=[", "dps.target=[ is not allowed: a regular expression"),
                              ("probe.folds=1", "probe.folds=1 is not allowed: at least 2"),
                              ("tuned.lrs=[0.1,-1]",
                               "tuned.lrs=[0.1,-1] is not allowed: a list of numbers greater than 0")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            build_run_config({"task": "rte", "output_dir": "x"}, [override])


def test_a_family_shares_one_section_and_each_recipe_gets_its_own_section_alone(monkeypatch):
    from agwm.config import METHOD_SECTIONS
    from agwm.finetune import make_recipe
    from agwm.settings import build_run_config

    names = [name for name, _ in METHOD_SECTIONS]
    assert len(names) == len(set(names)) and METHODS["prefix"].settings == METHODS["lora"].settings
    for name, section in (("prefix", "peft"), ("child-tuning-f", "child_tuning"), ("mixout", "mixout")):
        cfg = build_run_config({"task": "rte", "output_dir": "x", "finetune.method": name}, ["mixout.p=0.5"])
        recipe = make_recipe(cfg)
        assert recipe.settings is getattr(cfg, section) and recipe.run.method == name and recipe.run.seed == cfg.seed
    clash = FinetuneMethod("clash", "a section of another dataclass", recipe="m:a", settings=("peft", dict))
    monkeypatch.setitem(METHODS, clash.name, clash)
    with pytest.raises(ValueError, match="section peft is already PeftConfig's"):
        sections_for_schema()


def test_help_builds_without_torch_transformers_or_betty():
    code = ("import sys\nfrom agwm.cli import main\nfor command in ('search', 'finetune', 'experiment', 'report', "
            "'select'):\n    try:\n        main([command, '--help'])\n    except SystemExit:\n        pass\n"
            "print([m for m in ('torch', 'transformers', 'betty', 'datasets') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("usage: agwm") == 5 and done.stdout.strip().splitlines()[-1] == "[]"


def test_the_docs_methods_table_is_the_registrys():
    """docs/methods.md is written by scripts/methods_table.py; after adding a method, run it again."""
    text = (REPO / "docs" / "methods.md").read_text()
    assert methods_table() in text


def test_agwms_own_modules_load_without_betty():
    """agwm's errors are its own (agwm.errors): writing a run's files, the mixup layer or the data need nothing of
    Betty (one interpreter imports them all: none of them loads it if all together do not)."""
    code = ("import sys, agwm.run_folder, agwm.files, agwm.errors, agwm.mixup, agwm.data\n"
            "print([m for m in sys.modules if m == 'betty' or m.startswith('agwm_problems')])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


PLUGIN = '''from dataclasses import dataclass

from agwm.registry import FinetuneMethod, register_method


@dataclass
class ToyConfig:
    scale: float = 1.0

    def check(self):
        return [] if self.scale > 0 else [("scale", "greater than 0")]


register_method(FinetuneMethod("toy-plugin", "another package's toy method", recipe="toy_plugin:Toy",
                               settings=("toy", ToyConfig)))
'''


def test_an_installed_packages_methods_register_through_its_entry_point(tmp_path):
    """Another package declares methods (with settings) through the ``agwm.methods`` entry point group;
    one whose module cannot be imported is said in one line and left out."""
    (tmp_path / "toy_plugin.py").write_text(PLUGIN)
    for name, target in (("toy-plugin", "toy_plugin"), ("broken", "no_such_module_here")):
        dist = tmp_path / f"{name.replace('-', '_')}-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text(f"[agwm.methods]\n{name} = {target}\n")
    code = ("from agwm.cli import main\ntry:\n    main(['finetune', '--help'])\nexcept SystemExit:\n    pass\n"
            "from agwm.errors import ConfigError\nfrom agwm.settings import build_run_config\n"
            "flags = {'task': 'rte', 'output_dir': 'x', 'finetune.method': 'toy-plugin'}\n"
            "print('scale', build_run_config(flags, ['toy.scale=2']).toy.scale)\n"
            "try:\n    build_run_config(flags, ['toy.scale=0'])\nexcept ConfigError as error:\n    print(error)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"})
    assert done.returncode == 0, done.stderr
    assert "toy-plugin (another package's toy method)" in " ".join(done.stdout.split())
    assert "scale 2.0" in done.stdout and "toy.scale=0 is not allowed: greater than 0" in done.stdout
    assert done.stderr.strip().splitlines() == [
        "agwm: the methods of no_such_module_here (entry point broken of agwm.methods) are left out: "
        "ModuleNotFoundError: No module named 'no_such_module_here'"]
