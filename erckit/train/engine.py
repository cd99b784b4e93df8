"""``train(recipe)``: run every stage of a recipe, checkpoint each epoch, write the model.

Stages run in recipe order; a completed stage is recorded in the checkpoint
and never re-run on ``--resume``. Dev weighted F1 selects the best epoch of
each stage (test is evaluated once, at the very end).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from .. import registry
from ..cli import console as ui
from ..data.context import count_truncations
from ..data.types import Sample, make_samples
from ..errors import ErckitError, TrainingError
from ..fileio import atomic_write_text, remove_stale_staging
from ..metrics import classification_report
from ..model import ERCModel
from ..plugins import get_plugin_manager
from ..terminal import progress_bar
from ..recipe import DistillStage, FuseStage, Recipe, SupervisedStage, recipe_to_toml
from . import checkpoint as ckpt
from ..data.batching import Batch, BucketBatchSampler, SampleDataset, make_loader
from .frozen import Outputs, compute_outputs, samples_digest
from .objectives import DistillObjective, FuseObjective, IndexBatch, SupervisedObjective
from .optim import build_optimizer, build_scheduler
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
    resume: bool = False
    resume_from: Path | None = None
    overwrite: bool = False
    device: str | None = None
    precision: str | None = None
    deterministic: bool | None = None
    threads: int | None = None
    progress: bool = True


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
    run_dir = Path(options.output or recipe.output_dir or Path("runs") / recipe_name)
    lock = None
    if runtime.is_main:  # only rank 0 owns the run directory
        lock = claim_run_dir(
            run_dir,
            resume=options.resume,
            resume_from=options.resume_from,
            overwrite=options.overwrite,
            has_checkpoint=lambda d: ckpt.find_checkpoint(d) is not None,
            say=ui.console.print,
        )
        _print_start(recipe, recipe_name, runtime, run_dir)
    try:
        runtime.barrier()
        # --resume on a run that never reached a checkpoint starts it over (claim_run_dir says so)
        resuming = options.resume_from is not None or (options.resume and ckpt.find_checkpoint(run_dir) is not None)
        seed_everything(recipe.seed)
        with count_truncations() as truncations:
            result = Trainer(recipe, runtime, run_dir, options, resuming).run()
        if runtime.is_main:
            for message in truncations.messages():  # once per run, not per sample or stage
                ui.warning(message)
        return result
    finally:
        if lock is not None:
            lock.release()


def _print_start(recipe: Recipe, recipe_name: str, runtime: Runtime, run_dir: Path) -> None:
    """Say where this run computes and what it writes where, before anything is written."""
    processes = f", {runtime.world_size} processes" if runtime.distributed else ""
    ui.console.print(
        f"training {ui.escape(recipe_name)} on {runtime.device} ({runtime.precision}, "
        f"{torch.get_num_threads()} threads{processes}) into {ui.escape(run_dir.absolute())}"
    )
    data = recipe.data
    root = data.args.get("root")
    where = f" from {ui.escape(Path(str(root)).expanduser().absolute())}" if root is not None else ""
    ui.console.print(
        f"data {ui.escape(data.dataset)}{where}; cache {ui.escape(Path(data.cache_dir).expanduser().absolute())}"
    )


class Trainer:
    def __init__(self, recipe: Recipe, runtime: Runtime, run_dir: Path, options: TrainOptions, resuming: bool):
        self.recipe, self.runtime, self.run_dir, self.options = recipe, runtime, run_dir, options
        self.resuming = resuming
        self.hooks = get_plugin_manager().hook
        self.info = RunInfo(run_dir, recipe, runtime.rank, runtime.world_size)
        self.show = options.progress and runtime.is_main
        self._usable: dict[tuple[str, tuple], list[Sample]] = {}
        self._metrics_rows = 0

    # ------------------------------------------------------------------ setup

    def load_data(self) -> tuple[list[str], Splits]:
        from ..data.cache import DiskCache
        from ..data.pipeline import MediaResolver

        data = self.recipe.data
        corpus = registry.datasets.get(data.dataset)(**data.args)
        labels = list(data.labels or corpus.labels)

        def split(name: str | None) -> list[Sample]:
            if name is None or name not in corpus.splits:
                return []
            # Every split trains or scores: an unlabelled utterance is an error, named.
            return make_samples(corpus.split(name), labels, max_context=data.max_context, require_labels=True)

        splits = Splits(split(data.train_split), split(data.dev_split), split(data.test_split))
        if not splits.train:
            raise ErckitError(f"{data.dataset}: split {data.train_split!r} is empty or missing")
        if not splits.dev:
            raise ErckitError(f"{data.dataset}: split {data.dev_split!r} is empty or missing; dev selects the best epoch")
        if self.runtime.is_main and corpus.problems:
            for problem in corpus.problems[:20]:
                ui.warning(problem)
            if len(corpus.problems) > 20:
                ui.warning(f"... and {len(corpus.problems) - 20} more data problems")
        self.cache = DiskCache(data.cache_dir)
        self.cache.ensure_writable()  # now, not when the first frozen outputs are stored epochs later
        self.resolver = MediaResolver(self.cache, data.media_policy)
        return labels, splits

    def usable(self, samples: list[Sample], names: Iterable[str], split: str) -> list[Sample]:
        """Decode media the encoders need once (into the cache); drop samples the policy skips."""
        specs = tuple(sorted({self.model.encoders[n].media for n in names if self.model.encoders[n].media is not None}, key=repr))
        if not specs or not samples:
            return samples
        if (split, specs) not in self._usable:  # each split's media is checked and reported once per run
            report = self.resolver.prepare(samples, specs, progress=self.show, console=ui.console)
            if self.runtime.is_main and (report.reasons or report.skipped or report.zeroed):
                ui.console.print(f"[bold]{split}[/]: media summary")
                ui.console.print(report.render(limit=10))
            skipped = set(report.skipped_samples)
            self._usable[(split, specs)] = [s for s in samples if s.key not in skipped]
        return self._usable[(split, specs)]

    # -------------------------------------------------------------------- run

    def run(self) -> TrainResult:
        self.labels, self.splits = self.load_data()
        self.model = ERCModel.from_recipe(self.recipe, self.labels).to(self.runtime.device)
        self.model.use_fuser = any(isinstance(s, FuseStage) for s in self.recipe.stages)
        state, resume_point = ckpt.TrainState(), None
        if self.resuming:
            path = self.options.resume_from or ckpt.find_checkpoint(self.run_dir)
            if path is None:
                raise ErckitError(f"--resume: no checkpoint in {self.run_dir / 'checkpoints'}; start without --resume")
            changes = ckpt.recipe_changes(self.run_dir / "recipe.toml", recipe_to_toml(self.recipe))
            resume_point = ckpt.load_checkpoint(Path(path), self.model, self.recipe.stage_names(), changes)
            state = resume_point.state
            if self.runtime.is_main:
                if changes:
                    ui.warning(f"resuming with a recipe that differs from the run's recipe.toml: {changes}")
                self._trim_metrics(state.metrics_rows)
                ui.console.print(
                    f"resuming {self.run_dir}: {len(state.completed)} stage(s) done, "
                    f"stage {state.stage_index + 1} at epoch {state.epoch}"
                )
        if self.runtime.is_main:
            self._write_text(self.run_dir / "recipe.toml", recipe_to_toml(self.recipe, header="resolved recipe of this run"))
            self.hooks.on_train_start(run=self.info)
        if resume_point is not None and state.epoch == 0:
            set_rng_state(resume_point.rng)  # saved at a stage boundary: where the next stage is built
        for index, stage in enumerate(self.recipe.stages):
            if index < state.stage_index:
                continue
            if index > state.stage_index:
                state = ckpt.TrainState(stage_index=index, completed=state.completed)
                resume_point = None
            state = self.run_stage(stage, state, resume_point)
            resume_point = None
            state = ckpt.TrainState(stage_index=index + 1, completed=[*state.completed, stage.name or ""], history=[])
            self.save_checkpoint(state, None, None)
        test = self.final_test()
        model_dir = self.run_dir / "model"
        if self.runtime.is_main:
            self.model.to("cpu")
            remove_stale_staging(self.run_dir)  # of a killed earlier attempt; we hold the run's lock
            self.model.save_pretrained(model_dir)
            self.model.to(self.runtime.device)
            self.hooks.on_train_end(run=self.info, metrics=test)
            ui.console.print(f"[green]model written to[/] {model_dir}")
        self.runtime.barrier()
        return TrainResult(self.run_dir, model_dir, test, self.history())

    def history(self) -> list[dict[str, Any]]:
        path = self.run_dir / "metrics.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    # ------------------------------------------------------------------ stage

    def build_objective(self, stage: Any) -> tuple[nn.Module, Any, Any]:
        """(objective, train batch source, eval batch source) for one stage."""
        class_weight = self.class_weights() if stage.class_weights else None
        eval_size = stage.eval_batch_size or stage.batch_size * 2
        if isinstance(stage, SupervisedStage):
            encoders = {n: self.model.encoders[n] for n in stage.encoders}
            train = self.loader_source(encoders, "train", stage.batch_size, shuffle=True, bucket=stage.bucket_by_length)
            dev = self.loader_source(encoders, "dev", eval_size, shuffle=False)
            return SupervisedObjective(encoders, class_weight), train, dev
        if isinstance(stage, DistillStage):
            students = {n: self.model.encoders[n] for n in stage.students}
            train = self.loader_source(students, "train", stage.batch_size, shuffle=True, bucket=stage.bucket_by_length)
            teacher = self.frozen_outputs(stage.teacher, train.samples, "train", eval_size)
            distillers = [
                (loss.weight, registry.distillers.get(loss.factory)(**loss.args)) for loss in stage.losses
            ]
            dev = self.loader_source(students, "dev", eval_size, shuffle=False)
            return DistillObjective(students, distillers, teacher, stage.ce_weight, class_weight), train, dev
        assert isinstance(stage, FuseStage) and self.model.fuser is not None
        names = stage.encoders or list(self.model.encoders)
        if self.recipe.anchor not in names:
            names = [self.recipe.anchor, *names]
        outputs: dict[str, dict[str, Outputs]] = {}
        sources = {}
        for split in ("train", "dev"):
            samples = self.usable(getattr(self.splits, split), names, split)
            outputs[split] = {n: self.frozen_outputs(n, samples, split, eval_size) for n in names}
            labels = torch.tensor([s.label for s in samples], dtype=torch.long)
            size = stage.batch_size if split == "train" else eval_size
            sources[split] = IndexSource(split, labels, size, shuffle=split == "train", seed=self.recipe.seed, runtime=self.runtime)
        return FuseObjective(self.model.fuser, self.recipe.anchor, outputs, class_weight), sources["train"], sources["dev"]

    def loader_source(self, encoders: dict, split: str, batch_size: int, *, shuffle: bool, bucket: bool = True) -> "LoaderSource":
        samples = self.usable(getattr(self.splits, split), encoders, split)
        dataset = SampleDataset(samples, encoders, self.resolver)
        sampler = BucketBatchSampler(
            dataset.lengths(), batch_size, shuffle=shuffle, seed=self.recipe.seed, bucket=bucket,
            rank=self.runtime.rank if shuffle else 0, world_size=self.runtime.world_size if shuffle else 1,
        )
        return LoaderSource(samples, sampler, make_loader(dataset, sampler, self.recipe.data.num_workers))

    def frozen_outputs(self, name: str, samples: list[Sample], split: str, batch_size: int) -> Outputs:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with progress_bar(*columns, console=ui.console, transient=True, enabled=self.show) as progress:
            return compute_outputs(
                self.model.encoders[name], samples, self.runtime, batch_size=batch_size, resolver=self.resolver,
                cache=self.cache, data_digest=samples_digest(samples), num_workers=self.recipe.data.num_workers,
                description=f"{name} outputs ({split})", progress=progress,
            )

    def class_weights(self) -> Tensor:
        counts = torch.bincount(torch.tensor([s.label for s in self.splits.train]), minlength=len(self.labels)).float()
        weights = counts.sum() / (len(self.labels) * counts.clamp(min=1))
        return weights

    def run_stage(self, stage: Any, state: ckpt.TrainState, resume_point: Any) -> ckpt.TrainState:
        name = stage.name or stage.kind
        if self.runtime.is_main:
            ui.console.rule(f"stage {name} ({stage.kind})")
            self.hooks.on_stage_start(run=self.info, stage=name, kind=stage.kind)
        objective, train_source, dev_source = self.build_objective(stage)
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        for parameter in objective.parameters():
            parameter.requires_grad_(True)
        self.model.eval()  # frozen parts stay in eval mode; the objective is switched to train per epoch
        if not any(True for _ in objective.parameters()):
            # e.g. LateFusion with fixed weights: nothing to optimise, only to measure.
            dev = self.evaluate_source(objective, dev_source)
            if self.runtime.is_main:
                ui.console.print(f"stage {name}: no trainable parameters; dev weighted F1 {dev['dev/selection']:.4f}")
                self._append_metrics({"stage": name, "epoch": 0, **dev})
                self.hooks.on_stage_end(run=self.info, stage=name, metrics=_numbers(dev))
            return state
        wrapped: nn.Module = objective
        if self.runtime.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [self.runtime.device.index] if self.runtime.device.type == "cuda" else None
            wrapped = DistributedDataParallel(objective, device_ids=device_ids)
        steps_per_epoch = math.ceil(len(train_source) / stage.grad_accum)
        total_steps = steps_per_epoch * stage.epochs
        optimizer = build_optimizer(stage, objective)
        scheduler = build_scheduler(stage, optimizer, total_steps)
        scaler = self.runtime.grad_scaler()
        best: dict[str, Tensor] | None = None
        if resume_point is not None and state.epoch > 0:
            resume_point.restore_stage(self.model, objective, optimizer, scheduler, scaler)
            best = resume_point.best
            # Saved after an epoch: restored here, once the stage is rebuilt, so what rebuilding
            # it drew (a distiller's initialisation, say) cannot shift what the next epoch draws.
            set_rng_state(resume_point.rng)
        for epoch in range(state.epoch, stage.epochs):
            if state.stopped_early:
                break
            started = time.perf_counter()
            train_loss, seen = self.train_epoch(stage, name, epoch, wrapped, objective, train_source, optimizer, scheduler, scaler, state)
            train_seconds = time.perf_counter() - started
            dev = self.evaluate_source(objective, dev_source)
            state.epoch = epoch + 1
            improved = state.best_metric is None or dev["dev/selection"] > state.best_metric
            if improved:
                state.best_metric, state.best_epoch, state.bad_epochs = dev["dev/selection"], epoch + 1, 0
                best = {k: v.detach().cpu().clone() for k, v in objective.state_dict().items()}
            else:
                state.bad_epochs += 1
            if stage.patience is not None and state.bad_epochs >= stage.patience:
                state.stopped_early = True
            elapsed = time.perf_counter() - started
            row = {
                "stage": name, "epoch": epoch + 1, "step": state.step, "train/loss": train_loss,
                "train/samples_per_s": seen / max(train_seconds, 1e-9), **dev, "best": improved, "seconds": elapsed,
            }
            state.history.append(row)
            if self.runtime.is_main:
                self._append_metrics(row)
                self._print_epoch(stage, row)
                self.hooks.on_epoch_end(run=self.info, stage=name, epoch=epoch + 1, metrics=_numbers(row))
            optim_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            if scaler is not None:
                optim_state["scaler"] = scaler.state_dict()
            self.save_checkpoint(state, best, optim_state, ckpt.outside_model(self.model, objective))
        if best is not None:
            objective.load_state_dict(best)  # dev-selected epoch, never test
        selected = next((r for r in state.history if r["epoch"] == state.best_epoch), {})
        if self.runtime.is_main:
            stopped = " (early stop)" if state.stopped_early else ""
            if state.history:
                ui.console.print(_epoch_table(name, state.history))
            ui.console.print(
                f"stage {name}: best dev epoch {state.best_epoch} "
                f"(selection {state.best_metric:.4f}){stopped}" if state.best_metric is not None else f"stage {name}: done"
            )
            self.hooks.on_stage_end(run=self.info, stage=name, metrics=_numbers(selected))
        return state

    def train_epoch(self, stage, name, epoch, wrapped, objective, source, optimizer, scheduler, scaler, state) -> tuple[float, int]:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        source.set_epoch(epoch)
        objective.train()
        total, count, seen = 0.0, 0, 0
        started = time.perf_counter()
        columns = (
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[samples_per_s]:.1f} samples/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        batches = len(source)
        with progress_bar(*columns, console=ui.console, transient=True, enabled=self.show) as progress:
            task = progress.add_task(f"{name} epoch {epoch + 1}/{stage.epochs}", total=batches, loss=float("nan"), samples_per_s=0.0)
            optimizer.zero_grad(set_to_none=True)
            for i, batch in enumerate(source):
                batch = batch.to(self.runtime.device)
                last_micro = (i + 1) % stage.grad_accum == 0 or i + 1 == batches
                sync = contextlib.nullcontext() if last_micro or not self.runtime.distributed else wrapped.no_sync()
                with sync:
                    with self.runtime.autocast():
                        loss = wrapped(batch)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"stage {name!r}: loss is {loss.item()} at epoch {epoch + 1}, step {state.step}, "
                            f"batch {i} (samples {source.describe(batch)}); lower the learning rate, "
                            "check the data, or use --precision fp32"
                        )
                    scaled = loss / stage.grad_accum
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                if last_micro:
                    if scaler is not None:
                        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    if stage.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(objective.parameters(), stage.max_grad_norm)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    state.step += 1
                size = len(batch.indices)
                total += loss.item() * size
                count += size
                seen += size * self.runtime.world_size
                progress.update(task, advance=1, loss=total / count, samples_per_s=seen / max(time.perf_counter() - started, 1e-9))
        mean = self._reduce_mean(total, count)
        return mean, seen

    def _reduce_mean(self, total: float, count: int) -> float:
        if not self.runtime.distributed:
            return total / max(count, 1)
        import torch.distributed as dist

        values = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(values)
        return float(values[0] / values[1].clamp(min=1))

    def evaluate_source(self, objective: Any, source: Any) -> dict[str, float]:
        """Dev metrics of every head the stage trains; 'dev/selection' is their mean weighted F1."""
        heads: dict[str, list[Tensor]] = {}
        gold: list[Tensor] = []
        with eval_mode(objective), torch.inference_mode(), self.runtime.autocast():
            for batch in source:
                batch = batch.to(self.runtime.device)
                for head, probs in objective.predict(batch).items():
                    heads.setdefault(head, []).append(probs.argmax(-1).cpu())
                gold.append(batch.labels.cpu())
        gold_all = torch.cat(gold).tolist()
        metrics: dict[str, float] = {}
        selections = []
        for head, predictions in heads.items():
            report = classification_report(gold_all, torch.cat(predictions).tolist(), self.labels)
            prefix = "dev/" if len(heads) == 1 else f"dev/{head}/"
            metrics.update(report.summary(prefix))
            selections.append(report.weighted_f1)
        metrics["dev/selection"] = sum(selections) / len(selections)
        return metrics

    # ------------------------------------------------------------------- test

    def final_test(self) -> dict[str, float]:
        if not self.splits.test:
            return {}
        names = list(self.model.encoders) if self.model.use_fuser else [self.recipe.anchor]
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
            self._append_metrics({"stage": "final", **metrics})
            self._write_text(self.run_dir / "test_report.json", json.dumps(report.to_dict(), indent=2))
            ui.console.print(
                f"[bold]test[/] ({len(gold)} utterances, {'fused' if self.model.use_fuser else self.recipe.anchor}): "
                f"weighted F1 {report.weighted_f1:.4f}  macro F1 {report.macro_f1:.4f}  accuracy {report.accuracy:.4f}"
            )
        return metrics

    # ----------------------------------------------------------------- output

    def save_checkpoint(self, state: ckpt.TrainState, best: Any, optim_state: Any, objective_state: Any = None) -> None:
        state.metrics_rows = self._metrics_rows
        if self.runtime.is_main:
            ckpt.save_checkpoint(self.run_dir, state, self.model, best, optim_state, objective_state)
        self.runtime.barrier()

    def _append_metrics(self, row: dict[str, Any]) -> None:
        try:
            with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as handle:
                handle.write(json.dumps(row) + "\n")
        except OSError as error:
            raise ErckitError(f"cannot write {self.run_dir / 'metrics.jsonl'}: {error.strerror or error}") from None
        self._metrics_rows += 1

    def _trim_metrics(self, rows: int) -> None:
        """Drop rows written after the checkpoint we resume from (a crash between the two writes)."""
        path = self.run_dir / "metrics.jsonl"
        self._metrics_rows = rows
        if path.exists():
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            if len(lines) > rows:
                self._write_text(path, "".join(lines[:rows]))

    def _write_text(self, path: Path, text: str) -> None:
        atomic_write_text(path, text)

    def _print_epoch(self, stage: Any, row: dict[str, Any]) -> None:
        flag = " [green]best[/]" if row["best"] else ""
        dev = row.get("dev/weighted_f1", row["dev/selection"])
        extra = ""
        if "dev/macro_f1" in row:
            extra = f"  macro {row['dev/macro_f1']:.4f}  acc {row['dev/accuracy']:.4f}"
        ui.console.print(
            f"{row['stage']} epoch {row['epoch']}/{stage.epochs}  loss {row['train/loss']:.4f}  "
            f"dev wF1 {dev:.4f}{extra}  {row['train/samples_per_s']:.1f} samples/s{flag}"
        )


def _epoch_table(stage: str, history: list[dict[str, Any]]) -> Any:
    """Every epoch of a stage: train loss, throughput and the dev metrics that select the best one."""
    from rich.table import Table

    table = Table(title=f"stage {stage}", title_justify="left")
    names = {"dev/weighted_f1": "dev wF1", "dev/macro_f1": "dev macro F1", "dev/accuracy": "dev acc"}
    metrics = [k for k in names if k in history[0]] or ["dev/selection"]
    for column in ("epoch", "train loss", *(names.get(k, "dev mean wF1") for k in metrics), "samples/s", "best"):
        table.add_column(column, justify="right")
    for row in history:
        table.add_row(
            str(row["epoch"]), f"{row['train/loss']:.4f}", *(f"{row[k]:.4f}" for k in metrics),
            f"{row['train/samples_per_s']:.1f}", "*" if row["best"] else "",
        )
    return table


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
