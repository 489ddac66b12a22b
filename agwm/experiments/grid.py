"""An experiment grid: method entries x tasks x training-set sizes x seeds, each run once.

Each finished run appends one JSON line to the results file. A line is written by one ``write``
and flushed to disk; a line cut short by a crash has no newline, is ignored when reading and cut
off before the next append. Rerunning a grid skips every run whose record is there."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import yaml
from tqdm.auto import tqdm

from agwm.data import DataError
from agwm.errors import ConfigError, from_problems
from agwm.experiments.executors import run_in_processes
from agwm.experiments.methods import PIPELINES, RENAMED_KINDS, grid_method, selectable_methods
from agwm.resolved import as_recorded, changed_settings
from agwm.settings import RunConfig, build_run_config, refuse_unknown, run_engine_settings
from agwm.training.build import run_data_fingerprint
from agwm.training.device import WORKLOAD as PROBE_WORKLOAD
from agwm.training.device import peak_mib_since, reset_peak, resolve_device, speed_probe
from agwm.training.guards import RunFailed, disk_full
from agwm_problems import engine_config_on
from agwm_problems.overrides import parse_overrides

GRID_KEYS = {"tasks", "sizes", "seeds", "methods", "data_dir", "model", "output_dir", "results", "overrides"}
ENTRY_KEYS = {"name", "method", "overrides", "tasks"}
# A task is a GLUE name or a mapping of a user's files: these keys, as the command-line flags spell them with _.
USER_TASK_KEYS = ("name", "train_file", "validation_file", "text_columns", "label_column", "task_type", "metric",
                  "validation_split")
ALL_ROWS = "all"  # a size: every training row of a user's file
ENGINE_SECTIONS = ("inner", "outer", "engine")


@dataclass
class Entry:
    name: str
    method: str
    overrides: list[str] = field(default_factory=list)
    tasks: list[str] | None = None  # the grid's tasks this entry runs on (None: all)
    preset: list[str] = field(default_factory=list)  # a pipeline name's settings (PIPELINES), before all others


@dataclass
class Run:
    entry: Entry
    task: str
    size: int | str
    seed: int
    config: RunConfig
    overrides: list[str]

    @property
    def key(self) -> str:
        return run_key(self.entry.name, self.task, self.size, self.seed)


def run_key(method: str, task: str, size: int | str, seed: int) -> str:
    return f"{method}/{task}/{size}/{seed}"


def task_name(task: str | dict) -> str:
    return task if isinstance(task, str) else task["name"]


def task_flags(task: str | dict, data_dir: str | None) -> dict:
    """The run settings of a grid task: a GLUE name (with the grid's data folder) or a user's files."""
    if isinstance(task, str):
        return {"task": task, "data_dir": data_dir}
    return {key: value for key, value in task.items() if key != "name"}


@dataclass
class Grid:
    entries: list[Entry]
    tasks: list[str | dict]
    sizes: list[int | str]
    seeds: list[int]
    output_dir: str
    results: str
    data_dir: str | None = None
    model: str | None = None
    overrides: list[str] = field(default_factory=list)

    def runs(self) -> list[Run]:
        """Every run, its settings validated (so a bad value stops the grid before it starts)."""
        runs = []  # by size, then seed: the first runs done compare every method on the same data
        for size in self.sizes:
            for seed in self.seeds:
                for task in self.tasks:
                    for entry in self.entries:
                        overrides = [*self.overrides, *entry.overrides]
                        name = task_name(task)
                        if entry.tasks is not None and name not in entry.tasks:
                            continue
                        flags = {**task_flags(task, self.data_dir), "seed": seed, "model": self.model,
                                 "train_size": None if size == ALL_ROWS else size,
                                 "output_dir": os.path.join(self.output_dir, entry.name, f"{name}-{size}-s{seed}"),
                                 "overwrite": True}  # the results file, not the folder, says whether a run is done
                        cfg = build_run_config(flags, [*entry.preset, *overrides])
                        runs.append(Run(entry, name, size, seed, cfg, overrides))
        for run in runs:
            if run.entry.method == "mixup":  # build_run_config has refused settings no outer level reads
                settings = run_engine_settings(run.config, engine_overrides(run.overrides))
                with from_problems():
                    engine_config_on(settings.engine, resolve_device(run.config.device))
        return runs


def part_of(grid: Grid, tasks: list[str] | None = None, sizes: list[int] | None = None,
            methods: list[str] | None = None, seeds: list[int] | None = None) -> Grid:
    """The part of ``grid`` with these tasks, training-set sizes, method entries and seeds (same results file)."""
    names = [e.name for e in grid.entries]
    task_names = [task_name(t) for t in grid.tasks]
    for flag, wanted, known in (("--tasks", tasks, task_names), ("--sizes", sizes, grid.sizes),
                                ("--methods", methods, names), ("--seeds", seeds, grid.seeds)):
        refuse_unknown(flag, wanted, known, "the grid's are")
    return dataclasses.replace(grid, tasks=[t for t in grid.tasks if not tasks or task_name(t) in tasks],
                               sizes=[s for s in grid.sizes if not sizes or s in sizes],
                               entries=[e for e in grid.entries if not methods or e.name in methods],
                               seeds=[s for s in grid.seeds if not seeds or s in seeds])


def engine_overrides(overrides: list[str]) -> list[str]:
    with from_problems():
        return [text for key, _, text in parse_overrides(overrides) if key.split(".")[0] in ENGINE_SECTIONS]


def _list(raw: dict, key: str, kind: type | tuple[type, ...], path: str) -> list:
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, kind) for v in value):
        kinds = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ConfigError(f"{path}: {key} must be a non-empty list of {kinds}, got {value!r}")
    return value


def _tasks(raw: dict, path: str) -> list[str | dict]:
    tasks = _list(raw, "tasks", (str, dict), path)
    for task in tasks:
        if isinstance(task, dict):
            bad = set(task) - set(USER_TASK_KEYS)
            if bad or "name" not in task or "train_file" not in task:
                raise ConfigError(f"{path}: task {task!r} is not allowed: a GLUE name, or a mapping with name, "
                                  f"train_file and optionally {', '.join(USER_TASK_KEYS[2:])}")
    names = [task_name(t) for t in tasks]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: task names must be unique, got {names}")
    return tasks


def _sizes(raw: dict, path: str) -> list[int | str]:
    sizes = _list(raw, "sizes", (int, str), path)
    bad = [s for s in sizes if isinstance(s, str) and s != ALL_ROWS]
    if bad:
        raise ConfigError(f"{path}: sizes {bad} are not allowed: whole numbers, or {ALL_ROWS!r} (a user file's rows)")
    return sizes


def _entry_tasks(item: dict, raw: dict, path: str) -> list[str] | None:
    """An entry's ``tasks``: names of the grid's tasks, or None (every task)."""
    if "tasks" not in item:
        return None
    tasks = raw.get("tasks") if isinstance(raw.get("tasks"), list) else []
    known = [t if isinstance(t, str) else t.get("name") for t in tasks if isinstance(t, (str, dict))]
    wanted = item["tasks"]
    if not isinstance(wanted, list) or not wanted or any(t not in known for t in wanted):
        raise ConfigError(f"{path}: method entry {item.get('name')!r} has tasks {wanted!r}: a non-empty list of "
                          f"the grid's task names ({', '.join(map(str, known))})")
    return [str(t) for t in wanted]


def load_grid(path: str) -> Grid:
    if not os.path.isfile(path):
        raise ConfigError(f"--grid {path} is not allowed: no such file")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        reason = getattr(error, "problem", None) or error
        raise ConfigError(f"--grid {path} is not allowed: not YAML{where} ({reason})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--grid {path} is not allowed: it cannot be read ({error})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"--grid {path} is not allowed: a YAML mapping of {', '.join(sorted(GRID_KEYS))}")
    unknown = set(raw) - GRID_KEYS
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(GRID_KEYS))}")
    entries = []
    for item in _list(raw, "methods", dict, path):
        bad = set(item) - ENTRY_KEYS
        if bad:
            raise ConfigError(f"{path}: method entry {item!r} has unknown key(s) {sorted(bad)}; "
                              "allowed: name, method, overrides, tasks")
        method = item.get("method", item.get("name"))
        kind, preset = PIPELINES.get(method, (method, []))
        if grid_method(kind) is None:
            raise ConfigError(f"{path}: method {method!r} is not allowed: one of {', '.join(selectable_methods())}")
        entries.append(Entry(str(item.get("name", method)), kind, [str(o) for o in item.get("overrides") or []],
                             _entry_tasks(item, raw, path), list(preset)))
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: method names must be unique, got {names}")
    return Grid(entries, _tasks(raw, path), _sizes(raw, path), _list(raw, "seeds", int, path),
                output_dir=raw.get("output_dir", "runs/grid"), results=raw.get("results", "results/results.jsonl"),
                data_dir=raw.get("data_dir"), model=raw.get("model"),
                overrides=[str(o) for o in raw.get("overrides") or []])


RECORD_KEYS = ("key", "method", "task", "train_size", "seed")  # what every record of a grid run holds


def read_records(path: str) -> list[dict]:
    """The complete records of a results file (a last line without a newline is not one); a line
    that is not a grid run's record stops with one line naming it."""
    if not os.path.exists(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} cannot be read as a results file ({error})") from None
    records = []
    for number, line in enumerate(text.split("\n")[:-1], start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}, line {number}: not a record (not JSON: {error.msg}); a results file "
                              "holds one JSON record of a grid run a line") from None
        missing = [k for k in RECORD_KEYS if k not in record] if isinstance(record, dict) else list(RECORD_KEYS)
        if missing:
            raise ConfigError(f"{path}, line {number}: not a record of a grid run (no {', '.join(missing)})")
        if record.get("kind") in RENAMED_KINDS:
            record["kind"] = RENAMED_KINDS[record["kind"]]
        records.append(record)
    return records


def append_record(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() > 0:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":  # a record cut short by a crash: drop it
                f.seek(0)
                content = f.read()
                f.truncate(content.rfind(b"\n") + 1)
        f.write((json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


DATA_FIELDS = ("task", "data_dir", "train_file", "validation_file", "test_file", "text_columns", "label_column",
               "task_type", "metric", "validation_split")


def check_data(runs: list[Run]) -> None:
    """Before the first run: every task's files and columns read and checked, each size within its
    training rows, the model loadable, and each method able to learn its task; a problem stops the
    grid with one line naming the task, with nothing run."""
    from agwm.inputs import check_model
    from agwm.registry import task_error
    from agwm.training.build import load_examples

    tasks, models = {}, set()
    for run in runs:
        cfg = run.config
        key = json.dumps([getattr(cfg, name) for name in DATA_FIELDS] + [cfg.finetune.holdout])
        try:
            if key not in tasks:
                tasks[key] = load_examples(cfg)
            examples = tasks[key]
            if cfg.train_size is not None and cfg.train_size > len(examples.train):
                raise DataError(f"size {cfg.train_size} is more than its {len(examples.train)} training rows")
            error = task_error(run.entry.method, examples.task) or (
                cfg.body == "setfit" and task_error("setfit", examples.task, "body=setfit"))
            if error:
                raise DataError(f"method {run.entry.name}: {error}")
        except DataError as error:
            relative = [p for p in data_paths(cfg) if not os.path.isabs(p)]
            where = f" (a grid's relative paths are read from the folder it runs in, {os.getcwd()})" if relative else ""
            raise DataError(f"task {run.task}: {error}; no run was started{where}") from None
        if (cfg.model, cfg.max_length) not in models:
            check_model(cfg.model, cfg.max_length)
            models.add((cfg.model, cfg.max_length))


def data_paths(cfg: RunConfig) -> list[str]:
    """The paths a run's settings name for its data: files and the GLUE folder."""
    return [p for p in (cfg.train_file, cfg.validation_file, cfg.test_file, cfg.data_dir) if p]


def recorded_with_other_data(runs: list[Run], recorded: dict[str, dict]) -> tuple[str, str] | None:
    """The first run whose record says it was made from files whose content has changed since, with
    the changed file; records made before fingerprints were kept are taken as they are."""
    for run in runs:
        was = recorded.get(run.key, {}).get("data")
        if was is None:
            continue
        now = run_data_fingerprint(run.config)
        for role in sorted(set(was) | set(now)):
            if (was.get(role) or {}).get("sha256") != (now.get(role) or {}).get("sha256"):
                return run.key, (now.get(role) or was.get(role))["file"]
    return None


def execute(run: Run) -> dict:
    """Run one grid cell; the record to append. Its ``speed_probe_s`` is the mean of
    :func:`~agwm.training.device.speed_probe` just before and just after the run, the machine's speed while it ran,
    and ``speed_probe_workload`` names what the probe timed; ``peak_memory_mib`` is the run's peak above
    what the worker held at its start (:mod:`agwm.training.device`: CUDA's allocator, or the resident set)."""
    device = resolve_device(run.config.device)
    run_fields = {"key": run.key, "method": run.entry.name, "kind": run.entry.method, "settings": run.overrides,
                  "task": run.task, "train_size": run.size, "seed": run.seed, "config": dataclasses.asdict(run.config),
                  "data": run_data_fingerprint(run.config)}
    probe_before = speed_probe(device)
    memory_before = reset_peak(device)
    start = time.perf_counter()
    try:
        outcome = grid_method(run.entry.method)(run.config, engine_overrides(run.overrides))
    except Exception as error:  # recorded as failed, not as a score; a resumed grid does not rerun it
        failure = error if isinstance(error, RunFailed) else disk_full(error)
        if failure is None:
            raise
        return {**run_fields, "score": None, "failed": str(failure),
                "wall_time_s": {"total": time.perf_counter() - start}}
    # a body made once for several runs (body=setfit) counts in each at the time it took to make
    total = time.perf_counter() - start - outcome.get("body_spent_s", 0) + outcome["wall_time_s"].get("body", 0)
    return {**run_fields, "score": outcome["score"], "dev": outcome["dev"],
            "wall_time_s": {**outcome["wall_time_s"], "total": total},
            "peak_memory_mib": peak_mib_since(device, memory_before), "threads": torch.get_num_threads(),
            "speed_probe_s": (probe_before + speed_probe(device)) / 2, "speed_probe_workload": PROBE_WORKLOAD,
            **{k: v for k, v in outcome.items() if k not in ("score", "dev", "wall_time_s")}}


def config_changes(recorded: dict, current: dict, kind: str) -> list[str]:
    """The settings of a recorded run of this kind of method that differ now (:func:`changed_settings`),
    as ``key: recorded -> current`` (both as JSON values)."""
    return [f"{key}: {was!r} -> {now!r}" for key, (was, now) in changed_settings(recorded, current, kind).items()]


@contextmanager
def results_lock(results: str):
    """Hold ``<results>.lock`` exclusively, or stop with one line if another runner holds it: two
    runners on one results file would run and record the same runs twice. The operating system
    releases the lock when its process ends, however it ends."""
    folder = os.path.dirname(results) or "."
    made = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    with open(results + ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ConfigError(f"{results} is being written by another grid runner ({holder}); wait for it to "
                              "finish, or give this grid another results file") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}")
        f.flush()
        try:
            yield
        finally:  # a grid that recorded nothing (refused, stopped) leaves no lock file or folder behind
            if not os.path.exists(results):
                with contextlib.suppress(OSError):
                    os.remove(results + ".lock")
                    if made:
                        os.rmdir(folder)


@dataclass
class RayOptions:
    """How :func:`run_grid` runs on Ray (:mod:`agwm.experiments.executors`): on the cluster at ``address``, or on
    a local Ray of ``workers`` x ``cpus_per_run`` CPUs; each run's request; retries of a dead worker."""
    address: str | None = None
    cpus_per_run: float = 1
    gpus_per_run: float = 0
    retries: int = 2


def run_grid(grid: Grid, workers: int = 1, ray: RayOptions | None = None) -> tuple[int, int]:
    """Run what is missing from ``grid.results``, holding its lock, in this process (``workers`` 1),
    a pool of ``workers`` processes, or as Ray tasks (``ray``); returns (runs done now, runs skipped)."""
    if workers < 1:
        raise ConfigError(f"--workers {workers} is not allowed: at least 1")
    if ray is not None:
        for flag, value, minimum in (("--cpus-per-run", ray.cpus_per_run, 0), ("--gpus-per-run", ray.gpus_per_run, 0),
                                     ("--retries", ray.retries, 0)):
            if not value >= minimum:
                raise ConfigError(f"{flag} {value} is not allowed: at least {minimum}")
        from agwm.experiments.executors import import_ray

        import_ray()  # not installed: stop before any run
    with results_lock(grid.results):
        return _run_missing(grid, workers, ray)


def recorded_with_other_settings(runs: list[Run], recorded: dict[str, dict]) -> dict[str, list[str]]:
    """Each run of ``runs`` whose record (``recorded``: key -> record) has settings it no longer has,
    with those changes (:func:`config_changes`)."""
    changes = {run.key: config_changes(recorded[run.key].get("config", {}), as_recorded(run.config), run.entry.method)
               for run in runs if run.key in recorded}
    return {key: changed for key, changed in changes.items() if changed}


def _run_missing(grid: Grid, workers: int, ray: RayOptions | None) -> tuple[int, int]:
    runs = grid.runs()
    recorded = {r["key"]: r for r in read_records(grid.results)}
    stale = recorded_with_other_settings(runs, recorded)
    if stale:
        key, changed = next(iter(stale.items()))
        raise ConfigError(f"{grid.results}: {key} was recorded with other settings "
                          f"({', '.join(changed[:4])}); give the entry a new name or remove its records")
    changed = recorded_with_other_data(runs, recorded)
    if changed:
        raise ConfigError(f"{grid.results}: {changed[0]} was made from other data ({changed[1]} has changed since); "
                          "remove its records, or give the grid another results file, to run it on the new data")
    pending = [r for r in runs if r.key not in recorded]
    check_data(pending)
    progress = tqdm(total=len(pending), desc="grid")

    def record(result: dict) -> None:
        append_record(grid.results, result)
        progress.update(1)

    try:
        if ray is not None:
            from agwm.experiments.executors import run_on_ray

            run_on_ray(pending, execute, record, address=ray.address,
                       local_cpus=max(1, round(workers * ray.cpus_per_run)), cpus_per_run=ray.cpus_per_run,
                       gpus_per_run=ray.gpus_per_run, retries=ray.retries)
        elif workers == 1:
            for run in pending:
                record(execute(run))
        else:
            run_in_processes(execute, pending, workers, record)
    finally:
        progress.close()
    return len(pending), len(runs) - len(pending)
