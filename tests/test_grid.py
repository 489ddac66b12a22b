"""The experiment grid: records, resume after a crash, bad grids; each method's defining property."""

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from agwm.data import DataError, get_task
from agwm.errors import ConfigError
from agwm.experiments.grid import append_record, config_changes, load_grid, part_of, read_records, run_grid
from agwm.experiments.methods import METHODS, joint_finetune, random_alpha, vanilla
from agwm.mixup import alpha_state_dict
from agwm.settings import build_run_config
from agwm.training.build import build_model
from agwm.training.device import WORKLOAD, speed_probe

CPU = torch.device("cpu")

GRID = """
tasks: [rte, mrpc]
sizes: [50]
seeds: [1, 2]
data_dir: {glue}
output_dir: {out}/runs
results: {out}/results.jsonl
methods:
  - name: first
    method: fake
  - name: second
    method: fake
    overrides: [finetune.lr=3e-5]
"""


@pytest.fixture
def fake_method(monkeypatch, quick_probe):
    calls = []

    def fake(cfg, engine_overrides):
        calls.append((cfg.task, cfg.seed, cfg.finetune.lr))
        held = torch.ones(64 * 2**20 // 4)  # 64 MiB held during the run: its peak memory  # noqa: F841
        if len(calls) == fake.crash_at:
            raise KeyboardInterrupt  # the grid is killed in the middle of a run
        return {"score": float(cfg.seed), "metric": "accuracy",
                "dev": {"accuracy": float(cfg.seed), "score": float(cfg.seed)},
                "wall_time_s": {"finetune": 0.1}, "machine": "a test machine"}

    fake.crash_at = None
    fake.calls = calls
    monkeypatch.setitem(METHODS, "fake", fake)
    return fake


def write_grid(tmp_path, glue_dir, text=GRID):
    path = tmp_path / "grid.yaml"
    path.write_text(text.format(glue=glue_dir, out=tmp_path))
    return str(path)


def test_a_killed_grid_resumes_without_losing_or_repeating_a_run(fake_method, glue_dir, tmp_path):
    grid = load_grid(write_grid(tmp_path, glue_dir))
    fake_method.crash_at = 5
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid)
    assert len(read_records(grid.results)) == 4
    fake_method.crash_at = None
    assert run_grid(grid) == (4, 4)
    records = read_records(grid.results)
    assert len(records) == 8 and len({r["key"] for r in records}) == 8
    assert run_grid(grid) == (0, 8)
    assert len(fake_method.calls) == 5 + 4  # the killed run is the only one run twice
    second = [r for r in records if r["method"] == "second"]
    assert all(r["settings"] == ["finetune.lr=3e-5"] for r in second)
    assert {c[2] for c in fake_method.calls} == {1e-4, 3e-5}


def test_an_entry_with_tasks_runs_on_those_tasks_alone(fake_method, glue_dir, tmp_path):
    grid = load_grid(write_grid(tmp_path, glue_dir, GRID.replace("overrides: [finetune.lr=3e-5]", "tasks: [mrpc]")))
    assert run_grid(grid) == (6, 0)
    assert sorted({(r["method"], r["task"]) for r in read_records(grid.results)}) == [
        ("first", "mrpc"), ("first", "rte"), ("second", "mrpc")]


def test_a_grid_whose_settings_changed_since_its_records_stops_instead_of_mixing_them(fake_method, glue_dir,
                                                                                     tmp_path):
    run_grid(load_grid(write_grid(tmp_path, glue_dir)))
    changed = GRID.replace("[finetune.lr=3e-5]", "[finetune.lr=5e-5]")
    with pytest.raises(ConfigError, match=r"second/rte/50/1 was recorded with other settings "
                                          r"\(finetune.lr: 3e-05 -> 5e-05\); give the entry a new name"):
        run_grid(load_grid(write_grid(tmp_path, glue_dir, changed)))
    old = read_records(str(tmp_path / "results.jsonl"))[0]
    del old["config"]["finetune"]["lr"]  # a setting the project did not have when the run was recorded
    assert config_changes(old["config"], old["config"] | {"finetune": {"lr": 1.0, "epochs": 10.0}}, "fake") == []


def test_a_grid_whose_task_file_changed_since_its_records_stops_instead_of_reusing_them(fake_method, tmp_path):
    rows = "text,label\n" + "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(80))
    (tmp_path / "train.csv").write_text(rows)
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"tasks: [{{name: mine, train_file: {tmp_path / 'train.csv'}}}]\nsizes: [50]\nseeds: [1]\n"
                    f"output_dir: {tmp_path}/runs\nresults: {tmp_path}/results.jsonl\nmethods: [{{name: fake}}]\n")
    assert run_grid(load_grid(str(grid))) == (1, 0)
    record = read_records(str(tmp_path / "results.jsonl"))[0]
    train = record["data"]["train"]
    assert train["file"] == str(tmp_path / "train.csv") and len(train["sha256"]) == 16
    assert run_grid(load_grid(str(grid))) == (0, 1)
    (tmp_path / "train.csv").write_text(rows.replace("text 3,b", "text 3,a"))  # a label flipped
    with pytest.raises(ConfigError, match=f"fake/mine/50/1 was made from other data \\({tmp_path / 'train.csv'} has "
                                          "changed since\\)"):
        run_grid(load_grid(str(grid)))


def test_a_refused_grid_leaves_no_lock_or_folder_and_names_where_relative_paths_are_read(fake_method, tmp_path,
                                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text("tasks: [{name: mine, train_file: data/train.csv}]\nsizes: [50]\nseeds: [1]\n"
                    "output_dir: out/runs\nresults: out/results.jsonl\nmethods: [{name: fake}]\n")
    with pytest.raises(DataError, match=f"task mine: .*no run was started \\(a grid's relative paths are read from "
                                        f"the folder it runs in, {tmp_path}\\)"):
        run_grid(load_grid(str(grid)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]  # no out/, no results.jsonl.lock


def test_a_setting_is_a_change_only_for_the_kinds_of_method_that_read_it():
    recorded = {"search": {"finetune_start": "pretrained", "folds": 2, "split_ratio": 0.8}}
    current = {"search": {"finetune_start": "fold_average", "folds": 1, "split_ratio": 0.8}}
    assert config_changes(recorded, current, "mixup") == ["search.finetune_start: 'pretrained' -> 'fold_average'",
                                                          "search.folds: 2 -> 1"]
    assert config_changes(recorded, current, "vanilla") == []
    current["search"]["split_ratio"] = 0.5  # a setting the table does not list is read by every kind
    assert config_changes(recorded, current, "vanilla") == ["search.split_ratio: 0.8 -> 0.5"]


def test_record_format(fake_method, glue_dir, tmp_path):
    grid = load_grid(write_grid(tmp_path, glue_dir))
    run_grid(grid)
    record = read_records(grid.results)[0]
    assert set(record) == {"key", "data", "method", "kind", "settings", "task", "train_size", "seed", "score", "metric",
                           "dev",
                           "wall_time_s", "speed_probe_s", "speed_probe_workload", "peak_memory_mib", "threads",
                           "machine", "config"}
    assert record["key"] == f"{record['method']}/{record['task']}/{record['train_size']}/{record['seed']}"
    assert record["config"]["task"] == record["task"] and record["config"]["seed"] == record["seed"]
    assert record["kind"] == "fake" and record["wall_time_s"]["finetune"] == 0.1 and "total" in record["wall_time_s"]
    assert record["speed_probe_s"] == 0.25 and record["speed_probe_workload"] == WORKLOAD
    assert 60 <= record["peak_memory_mib"] < 200  # the 64 MiB the fake run held, and little else
    assert record["threads"] == torch.get_num_threads()  # one run at a time: this process's threads


def test_a_record_cut_short_is_ignored_and_removed_by_the_next_append(tmp_path):
    path = str(tmp_path / "r.jsonl")
    run = {"method": "m", "task": "t", "train_size": 5, "seed": 1}
    append_record(path, {"key": "a", **run})
    with open(path, "a") as f:
        f.write('{"key": "b", "sco')  # killed mid-write
    assert [r["key"] for r in read_records(path)] == ["a"]
    append_record(path, {"key": "c", **run})
    assert [r["key"] for r in read_records(path)] == ["a", "c"]
    assert open(path).read().count("\n") == 2


@pytest.mark.slow  # reads every task's files (several seconds): the quick loop stays under two minutes
def test_a_part_of_the_grid_by_task_size_method_and_seed(fake_method, glue_dir, tmp_path):
    grid = load_grid(write_grid(tmp_path, glue_dir, GRID.replace("sizes: [50]", "sizes: [50, 60]")))
    assert run_grid(part_of(grid, tasks=["mrpc"], sizes=[60])) == (4, 0)
    assert {(r["task"], r["train_size"]) for r in read_records(grid.results)} == {("mrpc", 60)}
    assert run_grid(part_of(grid, sizes=[60])) == (4, 4)
    assert run_grid(part_of(grid, methods=["second"], seeds=[2])) == (2, 2)
    assert {(r["method"], r["seed"]) for r in read_records(grid.results) if r["train_size"] == 50} == {("second", 2)}
    assert run_grid(part_of(grid, methods=["second"])) == (2, 6)
    assert run_grid(grid) == (4, 12)
    with pytest.raises(ConfigError, match="--tasks cola is not allowed: the grid's are rte, mrpc"):
        part_of(grid, tasks=["cola"])
    with pytest.raises(ConfigError, match="--sizes 70 is not allowed: the grid's are 50, 60"):
        part_of(grid, sizes=[70])
    with pytest.raises(ConfigError, match="--methods third is not allowed: the grid's are first, second"):
        part_of(grid, methods=["second", "third"])
    with pytest.raises(ConfigError, match="--seeds 4 is not allowed: the grid's are 1, 2"):
        part_of(grid, seeds=[4])


@pytest.mark.slow
def test_parallel_workers_record_every_run_once(tiny_model_dir, glue_dir, tmp_path):
    text = GRID.replace("method: fake", "method: vanilla")
    text = text.replace("sizes: [50]", f"sizes: [8]\nmodel: {tiny_model_dir}")
    grid = load_grid(write_grid(tmp_path, glue_dir, text + "overrides: [finetune.epochs=1]\n"))
    assert run_grid(grid, workers=2) == (8, 0)  # real runs: spawned workers do not see a monkeypatched method
    records = read_records(grid.results)
    assert sorted(r["key"] for r in records) == sorted(run.key for run in grid.runs())


@pytest.mark.parametrize("change, message", [
    (("method: fake\n    overrides", "method: magic\n    overrides"), "method 'magic' is not allowed: one of"),
    (("sizes: [50]", "sizes: [50]\nepochs: 3"), "unknown key(s) ['epochs']"),
    (("finetune.lr=3e-5", "finetune.lr=-1"), "finetune.lr=-1 is not allowed: greater than 0"),
    (("finetune.lr=3e-5", "inner.cg_iter=2"), "inner.cg_iter=2: unknown key"),
    (("overrides: [finetune.lr=3e-5]", "tasks: [qqp]"), "method entry 'second' has tasks ['qqp']: a non-empty list "
                                                        "of the grid's task names (rte, mrpc)"),
    (("finetune.lr=3e-5", "engine.strategy=gpu, device=cpu"), "engine.strategy=gpu is not allowed with device cpu"),
    (("finetune.lr=3e-5", "search.problem=inner_only, hypergrad=sama"),
     "--hypergrad sama is not allowed with --problem inner_only: it has no outer level to use it; "
     "leave --problem out or give --problem bilevel (search.problem=bilevel)"),
    (("sizes: [50]", "sizes: []"), "sizes must be a non-empty list of int"),
])
def test_a_bad_grid_stops_before_any_run(change, message, fake_method, glue_dir, tmp_path):
    text = GRID.replace(*change)
    if any(key in change[1] for key in ("inner.", "engine.", "hypergrad")):
        text = text.replace("method: fake\n    overrides", "method: mixup\n    overrides")
    with pytest.raises(ConfigError, match=re.escape(message)):
        run_grid(load_grid(write_grid(tmp_path, glue_dir, text)))
    assert not fake_method.calls


def tiny_config(tiny_model_dir, glue_dir, out, *overrides):
    return build_run_config({"task": "rte", "train_size": 16, "seed": 5, "data_dir": glue_dir,
                             "model": tiny_model_dir, "output_dir": str(out)},
                            ["finetune.epochs=2", "finetune.eval_batch_size=300", *overrides])


def test_random_alpha_is_drawn_once_and_stays_fixed(tiny_model_dir, glue_dir, tmp_path):
    cfg = tiny_config(tiny_model_dir, glue_dir, tmp_path, "mixup.init_std=0.45")
    random_alpha(cfg, [])
    used = load_file(tmp_path / "finetune" / "alphas.safetensors")
    drawn = alpha_state_dict(build_model(cfg, get_task("rte"), with_mixup=True, device=CPU))
    assert used.keys() == drawn.keys() and all(torch.equal(used[k], drawn[k]) for k in used)
    spread = torch.cat([t.flatten() for t in used.values()])
    assert spread.std() > 0.2 and spread.min() >= 0 and spread.max() <= 1


def test_joint_trains_alpha_inside_the_box(tiny_model_dir, glue_dir, tmp_path):
    cfg = tiny_config(tiny_model_dir, glue_dir, tmp_path, "search.alpha_lr=0.5", "finetune.warmup_ratio=0")
    joint_finetune(cfg, [])
    learned = load_file(tmp_path / "finetune" / "alphas.safetensors")
    initial = alpha_state_dict(build_model(cfg, get_task("rte"), with_mixup=True, device=CPU))
    assert max((learned[k] - initial[k]).abs().max().item() for k in learned) > 1e-2
    assert all(t.min() >= 0 and t.max() <= 1 for t in learned.values())


def test_vanilla_has_no_mixup(tiny_model_dir, glue_dir, tmp_path):
    outcome = vanilla(tiny_config(tiny_model_dir, glue_dir, tmp_path), [])
    assert not (tmp_path / "finetune" / "alphas.safetensors").exists()
    saved = json.loads((tmp_path / "finetune" / "metrics.json").read_text())
    assert saved["score"] == outcome["score"] and saved["alpha_mode"] == "fixed" and saved["alphas"] is None


def test_the_speed_probe_leaves_the_global_random_streams_alone():
    torch.manual_seed(3)
    state = torch.get_rng_state()
    seconds = sorted(speed_probe(CPU, repeats=2) for _ in range(3))
    assert torch.equal(torch.get_rng_state(), state)
    assert seconds[0] > seconds[1] / 3 and seconds[2] < 3 * seconds[1]  # the same machine reads the same speed


def test_a_pipeline_name_means_one_search_in_grids_and_select(glue_dir, tmp_path):
    from agwm.experiments.selection import entry

    text = (f"tasks: [rte]\nsizes: [50]\nseeds: [1]\ndata_dir: {glue_dir}\noutput_dir: {tmp_path}/runs\n"
            f"results: {tmp_path}/r.jsonl\nmethods: [{{name: mixup}}, {{name: one-fold}}, {{name: fold-average}}, "
            "{name: mixup-k3, method: mixup, overrides: [search.folds=3]}]\n")
    (tmp_path / "g.yaml").write_text(text)
    searches = {run.entry.name: (run.entry.method, run.config.search.problem, run.config.search.folds)
                for run in load_grid(str(tmp_path / "g.yaml")).runs()}
    assert searches == {"mixup": ("mixup", "bilevel", 2), "one-fold": ("mixup", "inner_only", 1),
                        "fold-average": ("mixup", "inner_only", 2), "mixup-k3": ("mixup", "bilevel", 3)}
    assert (entry("mixup").method, entry("mixup").preset) == ("mixup", ["search.problem=bilevel", "search.folds=2"])
