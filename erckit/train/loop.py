"""The optimisation loop of one stage, whatever its kind.

A stage kind supplies the module to train and its batches (``StagePlan``); this
loop owns the rest: optimiser and schedule (registered components), precision,
gradient accumulation and clipping, DDP, dev selection by weighted F1, early
stopping, a checkpoint after every epoch, and restoring one on resume.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import replace
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..errors import TrainingError
from ..metrics import classification_report
from ..recipe import resolve
from ..recipe.schema import StageConfig
from . import checkpoint as ckpt
from .reporter import Reporter
from .runtime import Runtime, eval_mode, set_rng_state
from .stage import StagePlan


class StageLoop:
    """Train ``plan.module`` for ``stage.epochs`` epochs; keep the best dev epoch's weights."""

    def __init__(
        self,
        stage: StageConfig,
        plan: StagePlan,
        model: nn.Module,
        runtime: Runtime,
        labels: list[str],
        report: Reporter,
        on_epoch: Callable[[dict[str, Any]], None],
        save: Callable[[ckpt.TrainState, Any, Any, Any], None],
    ):
        self.stage, self.plan, self.labels, self.report = stage, plan, labels, report
        self.model = model  # the whole model: checkpoints hold it whole
        # A stage's own precision wins over the run's.
        self.runtime = replace(runtime, precision=stage.precision) if stage.precision else runtime
        self.on_epoch, self.save = on_epoch, save
        self.name = stage.name or stage.kind

    @property
    def module(self) -> nn.Module:
        return self.plan.module

    def trainable(self) -> bool:
        return any(True for _ in self.module.parameters())

    def evaluate(self) -> dict[str, float]:
        """Dev metrics of every head the stage trains; 'dev/selection' is their mean weighted F1."""
        heads: dict[str, list[Tensor]] = {}
        gold: list[Tensor] = []
        with eval_mode(self.module), torch.inference_mode(), self.runtime.autocast():
            for batch in self.plan.dev:
                batch = batch.to(self.runtime.device)
                for head, probs in self.module.predict(batch).items():
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

    def run(self, state: ckpt.TrainState, resume_point: Any) -> ckpt.TrainState:
        module, stage, runtime = self.module, self.stage, self.runtime
        wrapped: nn.Module = module
        if runtime.distributed:
            from torch.nn.parallel import DistributedDataParallel

            device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
            wrapped = DistributedDataParallel(module, device_ids=device_ids)
        steps_per_epoch = math.ceil(len(self.plan.train) / stage.grad_accum)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        optimizer = resolve.create("optimizers", stage.optimizer.model_dump(), params=named)
        scheduler = resolve.create(
            "schedulers", stage.scheduler.model_dump(), optimizer=optimizer, run_steps=steps_per_epoch * stage.epochs
        )
        scaler = runtime.grad_scaler()
        best: dict[str, Tensor] | None = None
        if resume_point is not None and state.epoch > 0:
            resume_point.restore_stage(self.model, module, optimizer, scheduler, scaler)
            best = resume_point.best
            # Saved after an epoch: restored here, once the stage is rebuilt, so what rebuilding
            # it drew (a distiller's initialisation, say) cannot shift what the next epoch draws.
            set_rng_state(resume_point.rng)
        for epoch in range(state.epoch, stage.epochs):
            if state.stopped_early:
                break
            started = time.perf_counter()
            train_loss, seen = self.train_epoch(epoch, wrapped, optimizer, scheduler, scaler, state)
            train_seconds = time.perf_counter() - started
            dev = self.evaluate()
            state.epoch = epoch + 1
            improved = state.best_metric is None or dev["dev/selection"] > state.best_metric
            if improved:
                state.best_metric, state.best_epoch, state.bad_epochs = dev["dev/selection"], epoch + 1, 0
                best = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
            else:
                state.bad_epochs += 1
            if stage.patience is not None and state.bad_epochs >= stage.patience:
                state.stopped_early = True
            row = {
                "stage": self.name, "epoch": epoch + 1, "step": state.step, "train/loss": train_loss,
                "train/samples_per_s": seen / max(train_seconds, 1e-9), **dev, "best": improved,
                "seconds": time.perf_counter() - started,
            }
            state.history.append(row)
            if runtime.is_main:
                self.on_epoch(row)
                self._print_epoch(row)
            optim_state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
            if scaler is not None:
                optim_state["scaler"] = scaler.state_dict()
            self.save(state, best, optim_state, ckpt.outside_model(self.model, module))
        if best is not None:
            module.load_state_dict(best)  # dev-selected epoch, never test
        if runtime.is_main and state.history:
            self.report.show(epoch_table(self.name, state.history))
        return state

    def train_epoch(self, epoch: int, wrapped: nn.Module, optimizer: Any, scheduler: Any, scaler: Any,
                    state: ckpt.TrainState) -> tuple[float, int]:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        stage, runtime, source, module = self.stage, self.runtime, self.plan.train, self.module
        source.set_epoch(epoch)
        module.train()
        total, count, seen = 0.0, 0, 0
        started = time.perf_counter()
        columns = (
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[samples_per_s]:.1f} samples/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
        )
        batches = len(source)
        with self.report.progress(*columns) as progress:
            task = progress.add_task(
                f"{self.name} epoch {epoch + 1}/{stage.epochs}", total=batches, loss=float("nan"), samples_per_s=0.0
            )
            optimizer.zero_grad(set_to_none=True)
            for i, batch in enumerate(source):
                batch = batch.to(runtime.device)
                last_micro = (i + 1) % stage.grad_accum == 0 or i + 1 == batches
                sync = contextlib.nullcontext() if last_micro or not runtime.distributed else wrapped.no_sync()
                with sync:
                    with runtime.autocast():
                        loss = wrapped(batch)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"stage {self.name!r}: loss is {loss.item()} at epoch {epoch + 1}, step {state.step}, "
                            f"batch {i} (samples {source.describe(batch)}); lower the learning rate, "
                            "check the data, or use --precision fp32"
                        )
                    scaled = loss / stage.grad_accum
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                if last_micro:
                    if scaler is not None:
                        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
                    if stage.max_grad_norm is not None:
                        torch.nn.utils.clip_grad_norm_(module.parameters(), stage.max_grad_norm)
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    state.step += 1
                size = len(batch.labels)
                total += loss.item() * size
                count += size
                seen += size * runtime.world_size
                progress.update(task, advance=1, loss=total / count, samples_per_s=seen / max(time.perf_counter() - started, 1e-9))
        return self._reduce_mean(total, count), seen

    def _reduce_mean(self, total: float, count: int) -> float:
        if not self.runtime.distributed:
            return total / max(count, 1)
        import torch.distributed as dist

        values = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(values)
        return float(values[0] / values[1].clamp(min=1))

    def _print_epoch(self, row: dict[str, Any]) -> None:
        flag = " [green]best[/]" if row["best"] else ""
        dev = row.get("dev/weighted_f1", row["dev/selection"])
        extra = ""
        if "dev/macro_f1" in row:
            extra = f"  macro {row['dev/macro_f1']:.4f}  acc {row['dev/accuracy']:.4f}"
        self.report.line(
            f"{self.report_name()} epoch {row['epoch']}/{self.stage.epochs}  loss {row['train/loss']:.4f}  "
            f"dev wF1 {dev:.4f}{extra}  {row['train/samples_per_s']:.1f} samples/s{flag}"
        )

    def report_name(self) -> str:
        from ..terminal import escape

        return escape(self.name)


def epoch_table(stage: str, history: list[dict[str, Any]]) -> Any:
    """Every epoch of a stage: train loss, throughput and the dev metrics that select the best one."""
    from rich.table import Table

    from ..terminal import escape

    table = Table(title=f"stage {escape(stage)}", title_justify="left")
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
