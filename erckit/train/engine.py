"""``train(recipe)``: run every stage of a recipe, checkpoint each epoch, write the model.

Stages run in recipe order, each built by its registered stage kind
(``erckit.train.stage``) and optimised by ``erckit.train.loop``; a completed
stage is recorded in the checkpoint and never re-run on ``--resume``. Dev
weighted F1 selects the best epoch of each stage (test is evaluated once, at the
very end). What a person reads goes through a ``Reporter``, metrics through the
recipe's loggers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor

from ..data.context import count_truncations
from ..data.types import Sample
from ..errors import ErckitError, UsageError
from ..fileio import atomic_write_text, remove_stale_staging
from ..metrics import classification_report
from ..model import ERCModel
from ..plugins import get_plugin_manager
from ..recipe import Recipe, recipe_to_dict, recipe_to_toml, resolve
from ..recipe.corpus import encoder_media
from ..recipe.load import stage_kinds
from ..recipe.schema import short_kind
from ..terminal import escape
from . import checkpoint as ckpt
from ..data.batching import Batch, BucketBatchSampler, SampleDataset, make_loader
from .frozen import Outputs, compute_outputs, samples_digest
from .loop import StageLoop
from .modules import IndexBatch
from .reporter import QuietReporter, Reporter
from .rundir import claim_run_dir
from .runtime import Runtime, eval_mode, seed_everything, set_rng_state, setup_runtime


@dataclass
class RunInfo:
    """What training-event hooks receive as ``run``."""

    directory: Path
    recipe: Recipe
    rank: int = 0
    world_size: int = 1


@dataclass
class TrainOptions:
    output: Path | None = None
    recipe_path: Path | None = None  # for provenance.json: the git commit of the recipe's repository
    resume: bool = False
    resume_from: Path | None = None
    overwrite: bool = False
    device: str | None = None
    precision: str | None = None
    deterministic: bool | None = None
    threads: int | None = None
    progress: bool = True
    reporter: Reporter | None = None  # default: a rich console on stderr (rank 0 only)


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path
    test: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Splits:
    train: list[Sample]
    dev: list[Sample]
    test: list[Sample]


def train(recipe: Recipe, recipe_name: str = "recipe", options: TrainOptions | None = None) -> TrainResult:
    options = options or TrainOptions()
    runtime = setup_runtime(
        options.device or recipe.runtime.device,
        options.precision or recipe.runtime.precision,
        recipe.runtime.deterministic if options.deterministic is None else options.deterministic,
        recipe.runtime.threads if options.threads is None else options.threads,
    )
    check_precisions(recipe, runtime)
    run_dir = Path(options.output or recipe.output_dir or Path("runs") / recipe_name)
    report = (options.reporter or Reporter(progress=options.progress)) if runtime.is_main else QuietReporter()
    lock = None
    if runtime.is_main:  # only rank 0 owns the run directory
        lock = claim_run_dir(
            run_dir,
            resume=options.resume,
            resume_from=options.resume_from,
            overwrite=options.overwrite,
            has_checkpoint=lambda d: ckpt.find_checkpoint(d) is not None,
            say=report.line,
        )
        _print_start(report, recipe, recipe_name, runtime, run_dir)
    try:
        runtime.barrier()
        # --resume on a run that never reached a checkpoint starts it over (claim_run_dir says so)
        resuming = options.resume_from is not None or (options.resume and ckpt.find_checkpoint(run_dir) is not None)
        seed_everything(recipe.seed)
        with count_truncations() as truncations:
            result = Trainer(recipe, runtime, run_dir, options, resuming, report).run()
        if runtime.is_main:
            for message in truncations.messages():  # once per run, not per sample or stage
                report.warning(message)
        return result
    finally:
        if lock is not None:
            lock.release()


def check_precisions(recipe: Recipe, runtime: Runtime) -> None:
    """Refuse, before anything runs, a stage precision the device cannot do."""
    for stage in recipe.stages:
        if stage.precision == "fp16" and runtime.device.type == "cpu":
            raise UsageError(f"stage {stage.name!r}: precision fp16 needs a CUDA device; on CPU use fp32 or bf16")


def _print_start(report: Reporter, recipe: Recipe, recipe_name: str, runtime: Runtime, run_dir: Path) -> None:
    """Say where this run computes and what it writes where, before anything is written."""
    processes = f", {runtime.world_size} processes" if runtime.distributed else ""
    report.line(
        f"training {escape(recipe_name)} on {runtime.device} ({runtime.precision}, "
        f"{torch.get_num_threads()} threads{processes}) into {escape(run_dir.absolute())}"
    )
    data = recipe.data
    root = data.args.get("root")
    where = f" from {escape(Path(str(root)).expanduser().absolute())}" if root is not None else ""
    report.line(f"data {escape(data.dataset)}{where}; cache {escape(Path(data.cache_dir).expanduser().absolute())}")


class Trainer:
    """Runs the stages of one recipe in order; it is also the ``StageContext`` stage kinds build from."""

    def __init__(self, recipe: Recipe, runtime: Runtime, run_dir: Path, options: TrainOptions, resuming: bool,
                 report: Reporter):
        self.recipe, self.runtime, self.run_dir, self.options = recipe, runtime, run_dir, options
        self.resuming = resuming
        self.report = report
        self.hooks = get_plugin_manager().hook
        self.info = RunInfo(run_dir, recipe, runtime.rank, runtime.world_size)
        self.seed = recipe.seed
        # Written as the run's recipe.toml, kept in the model, and compared with on resume.
        self.resolved_toml = recipe_to_toml(recipe, header="resolved recipe of this run")
        self._usable: dict[tuple[str, tuple], list[Sample]] = {}
        self._metrics_rows = 0
        self.rows: list[dict[str, Any]] = []  # logged by this process
        self.loggers: list[Any] = []
        self.stage = recipe.stages[0]

    # ------------------------------------------------------------------ setup

    def load_data(self) -> tuple[list[str], Splits]:
        # The same functions `erckit data prepare` uses, so it fills exactly the cache read here.
        from ..recipe.corpus import media_resolver, problem_lines, recipe_splits

        data = recipe_splits(self.recipe)
        if self.runtime.is_main:
            for line in problem_lines(data.problems):
                self.report.warning(line)
        self.resolver = media_resolver(self.recipe)
        self.cache = self.resolver.cache
        return data.labels, Splits(**data.splits)

    def start_loggers(self, resumed_rows: int | None) -> None:
        params = recipe_to_dict(self.recipe)
        for table in self.recipe.loggers:
            logger = resolve.create("loggers", table.model_dump(), run_dir=self.run_dir)
            logger.start(self.info, params, resumed_rows)
            self.loggers.append(logger)

    # ---------------------------------------------------- the StageContext API

    def samples(self, split: str) -> list[Sample]:
        return getattr(self.splits, split)

    def usable(self, samples: list[Sample], names: Iterable[str], split: str) -> list[Sample]:
        """Decode media the encoders need once (into the cache); drop samples the policy skips."""
        specs = encoder_media(self.model.encoders[n] for n in names)
        if not specs or not samples:
            return list(samples)
        key = (split, specs)
        if key not in self._usable:  # each split's media is checked and reported once per run
            report = self.resolver.prepare(samples, specs, progress=self.report.show_progress, console=self.report.console)
            if self.runtime.is_main and (report.reasons or report.skipped or report.zeroed):
                self.report.line(f"[bold]{escape(split)}[/]: media summary")
                self.report.show(report.render(limit=10))
            skipped = set(report.skipped_samples)
            self._usable[key] = [s for s in samples if s.key not in skipped]
        return self._usable[key]

    def _batch_size(self, shuffle: bool) -> int:
        return self.stage.batch_size if shuffle else (self.stage.eval_batch_size or self.stage.batch_size * 2)

    def loader(self, encoders: dict, split: str, *, shuffle: bool) -> "LoaderSource":
        samples = self.usable(self.samples(split), encoders, split)
        dataset = SampleDataset(samples, encoders, self.resolver)
        sampler = BucketBatchSampler(
            dataset.lengths(), self._batch_size(shuffle), shuffle=shuffle, seed=self.seed,
            bucket=self.stage.bucket_by_length if shuffle else True,
            rank=self.runtime.rank if shuffle else 0, world_size=self.runtime.world_size if shuffle else 1,
        )
        return LoaderSource(samples, sampler, make_loader(dataset, sampler, self.recipe.data.num_workers))

    def index_source(self, split: str, samples: list[Sample], *, shuffle: bool) -> "IndexSource":
        labels = torch.tensor([s.label for s in samples], dtype=torch.long)
        return IndexSource(split, labels, self._batch_size(shuffle), shuffle=shuffle, seed=self.seed, runtime=self.runtime)

    def frozen_outputs(self, name: str, samples: list[Sample], split: str, batch_size: int | None = None) -> Outputs:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with self.report.progress(*columns) as progress:
            return compute_outputs(
                self.model.encoders[name], samples, self.runtime, batch_size=batch_size or self._batch_size(False),
                resolver=self.resolver, cache=self.cache, data_digest=samples_digest(samples),
                num_workers=self.recipe.data.num_workers, description=f"{name} outputs ({split})", progress=progress,
            )

    def create(self, registry: str, table: Any, *, reserved: Iterable[str] = ()) -> Any:
        return resolve.create(
            registry, dict(table), reserved=reserved,
            num_classes=len(self.labels), labels=list(self.labels), class_counts=list(self.class_counts),
        )

    def objective(self) -> Any:
        return self.create("objectives", self.stage.objective.model_dump())

    # -------------------------------------------------------------------- run

    def run(self) -> TrainResult:
        self.labels, self.splits = self.load_data()
        counts = torch.bincount(torch.tensor([s.label for s in self.splits.train]), minlength=len(self.labels))
        self.class_counts = [int(c) for c in counts]  # training examples per class, for objectives
        self.model = ERCModel.from_recipe(self.recipe, self.labels).to(self.runtime.device)
        kinds = stage_kinds(self.recipe)
        self.model.use_fuser = any(kind.uses_fuser for kind in kinds)
        state, resume_point = ckpt.TrainState(), None
        if self.resuming:
            path = self.options.resume_from or ckpt.find_checkpoint(self.run_dir)
            if path is None:
                raise ErckitError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}; start without --resume")
            changes = ckpt.recipe_changes(self.run_dir / "recipe.toml", self.resolved_toml)
            resume_point = ckpt.load_checkpoint(Path(path), self.model, self.recipe.stage_names(), changes)
            state = resume_point.state
            self._metrics_rows = state.metrics_rows
            if self.runtime.is_main:
                if changes:
                    self.report.warning(f"resuming with a recipe that differs from the run's recipe.toml: {changes}")
                self.report.line(
                    f"resuming {escape(self.run_dir)}: {len(state.completed)} stage(s) done, "
                    f"stage {state.stage_index + 1} at epoch {state.epoch}"
                )
        failed = True
        try:
            if self.runtime.is_main:
                atomic_write_text(self.run_dir / "recipe.toml", self.resolved_toml)
                self.record_provenance()
                self.start_loggers(state.metrics_rows if resume_point is not None else None)
                self.hooks.on_train_start(run=self.info)
            if resume_point is not None and state.epoch == 0:
                set_rng_state(resume_point.rng)  # saved at a stage boundary: where the next stage is built
            for index, (stage, kind) in enumerate(zip(self.recipe.stages, kinds)):
                if index < state.stage_index:
                    continue
                if index > state.stage_index:
                    state = ckpt.TrainState(stage_index=index, completed=state.completed)
                    resume_point = None
                state = self.run_stage(stage, kind, state, resume_point)
                resume_point = None
                state = ckpt.TrainState(stage_index=index + 1, completed=[*state.completed, stage.name or ""], history=[])
                self.save_checkpoint(state, None, None)
            test = self.final_test()
            model_dir = self.run_dir / "model"
            if self.runtime.is_main:
                self.model.to("cpu")
                remove_stale_staging(self.run_dir)  # of a killed earlier attempt; we hold the run's lock
                self.model.training_recipe = self.resolved_toml
                self.model.save_pretrained(model_dir)
                self.model.to(self.runtime.device)
                self.hooks.on_train_end(run=self.info, metrics=test)
                self.report.line(f"[green]model written to[/] {escape(model_dir)}")
            failed = False
        finally:
            self.finish_loggers(failed)
        self.runtime.barrier()
        return TrainResult(self.run_dir, model_dir, test, self.history())

    # ------------------------------------------------------------------ stage

    def run_stage(self, stage: Any, kind: Any, state: ckpt.TrainState, resume_point: Any) -> ckpt.TrainState:
        name = stage.name or stage.kind
        self.stage = stage
        if self.runtime.is_main:
            self.report.rule(f"stage {name} ({short_kind(stage.kind)})")
            self.hooks.on_stage_start(run=self.info, stage=name, kind=stage.kind)
        plan = kind.build(self)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        for parameter in plan.module.parameters():
            parameter.requires_grad_(True)
        self.model.eval()  # frozen parts stay in eval mode; the stage module is switched to train per epoch
        def epoch_done(row: dict[str, Any]) -> None:
            self.log_row(row)
            self.hooks.on_epoch_end(run=self.info, stage=name, epoch=row["epoch"], metrics=_numbers(row))

        loop = StageLoop(stage, plan, self.model, self.runtime, self.labels, self.report, epoch_done, self.save_checkpoint)
        if self.runtime.is_main:
            count = sum(p.numel() for p in plan.module.parameters())
            self.report.line(f"stage {escape(name)}: training {count:,} parameters of {escape(type(plan.module).__name__)}")
        if not loop.trainable():
            # e.g. LateFusion with fixed weights: nothing to optimise, only to measure.
            dev = loop.evaluate()
            if self.runtime.is_main:
                self.report.line(f"stage {escape(name)}: no trainable parameters; dev weighted F1 {dev['dev/selection']:.4f}")
                self.log_row({"stage": name, "epoch": 0, **dev})
                self.hooks.on_stage_end(run=self.info, stage=name, metrics=_numbers(dev))
            return state
        state = loop.run(state, resume_point)
        selected = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
        if self.runtime.is_main:
            stopped = " (early stop)" if state.stopped_early else ""
            self.report.line(
                f"stage {escape(name)}: best dev epoch {state.best_epoch} (selection {state.best_metric:.4f}){stopped}"
                if state.best_metric is not None else f"stage {escape(name)}: done"
            )
            self.hooks.on_stage_end(run=self.info, stage=name, metrics=_numbers(selected))
        return state

    # ------------------------------------------------------------------- test

    def final_test(self) -> dict[str, float]:
        if not self.splits.test:
            return {}
        names = list(self.model.encoders) if self.model.use_fuser else [self.model.anchor]
        samples = self.usable(self.splits.test, names, "test")
        outputs = {n: self.frozen_outputs(n, samples, "test", 32) for n in names}
        gold = [s.label for s in samples]
        with eval_mode(self.model), torch.inference_mode():
            every = torch.arange(len(samples))
            logits = self.model.fuse({n: o.rows(every, self.runtime.device) for n, o in outputs.items()})
        predicted = logits.argmax(-1).cpu().tolist()
        report = classification_report(gold, predicted, self.labels)
        metrics = report.summary("test/")
        if self.runtime.is_main:
            self.log_row({"stage": "final", **metrics})
            atomic_write_text(self.run_dir / "test_report.json", json.dumps(report.to_dict(), indent=2))
            self.report.line(
                f"[bold]test[/] ({len(gold)} utterances, {'fused' if self.model.use_fuser else escape(self.model.anchor)}): "
                f"weighted F1 {report.weighted_f1:.4f}  macro F1 {report.macro_f1:.4f}  accuracy {report.accuracy:.4f}"
            )
        return metrics

    # ----------------------------------------------------------------- output

    def record_provenance(self) -> None:
        from . import provenance

        data = self.recipe.data
        fingerprints = {split: samples_digest(getattr(self.splits, split)) for split in ("train", "dev", "test")}
        sizes = {split: len(getattr(self.splits, split)) for split in ("train", "dev", "test")}
        root = data.args.get("root")
        provenance.record(
            self.run_dir, recipe_path=self.options.recipe_path, device=self.runtime.device, resuming=self.resuming,
            data={"dataset": data.dataset, "root": str(Path(str(root)).expanduser().absolute()) if root else None,
                  "labels": list(self.labels), "utterances": sizes, "fingerprints": fingerprints},
        )

    def history(self) -> list[dict[str, Any]]:
        """Every metrics row of the run: metrics.jsonl when the JSONL logger kept it (resumed runs
        included), else the rows this process logged."""
        path = self.run_dir / "metrics.jsonl"
        if any(table.factory == "erckit.JSONL.v1" for table in self.recipe.loggers) and path.exists():
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return list(self.rows)

    def save_checkpoint(self, state: ckpt.TrainState, best: Any, optim_state: Any, objective_state: Any = None) -> None:
        state.metrics_rows = self._metrics_rows
        if self.runtime.is_main:
            ckpt.save_checkpoint(self.run_dir, state, self.model, best, optim_state, objective_state)
        self.runtime.barrier()

    def finish_loggers(self, failed: bool) -> None:
        """Finish every logger, even when one of them fails to; then raise the first failure
        (unless training itself failed: that error is the one to see)."""
        errors = []
        for logger in self.loggers:
            try:
                logger.finish(None if failed else self.run_dir / "model")
            except Exception as error:  # noqa: BLE001 - re-raised below, after the others finished
                errors.append(error)
        if errors and not failed:
            raise errors[0]

    def log_row(self, row: dict[str, Any]) -> None:
        """One metrics row to every logger (rank 0); counted, so a resume forgets rows after its checkpoint."""
        for logger in self.loggers:
            logger.log(row)
        self.rows.append(row)
        self._metrics_rows += 1


def _numbers(row: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


@dataclass
class LoaderSource:
    samples: list[Sample]
    sampler: BucketBatchSampler
    loader: Any

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)

    def describe(self, batch: Batch) -> str:
        return ", ".join(self.samples[i].key for i in batch.indices.tolist()[:8])


class IndexSource:
    """Batches of row indices over cached outputs (fuse stage)."""

    def __init__(self, split: str, labels: Tensor, batch_size: int, *, shuffle: bool, seed: int, runtime: Runtime):
        self.split, self.labels = split, labels
        self.sampler = BucketBatchSampler(
            [1] * len(labels), batch_size, shuffle=shuffle, seed=seed, bucket=False,
            rank=runtime.rank if shuffle else 0, world_size=runtime.world_size if shuffle else 1,
        )

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self):
        for rows in self.sampler:
            indices = torch.tensor(rows, dtype=torch.long)
            yield IndexBatch(self.split, indices, self.labels[indices])

    def __len__(self) -> int:
        return len(self.sampler)

    def describe(self, batch: IndexBatch) -> str:
        return f"{self.split} rows {batch.indices.tolist()[:8]}"
