"""Getting decoded media into samples: decode once into the cache, then fill per sample.

* ``MediaResolver.prepare(samples, specs)`` runs in the main process before
  training: every distinct (file, span, spec) the samples need is decoded once
  (a small thread pool, a rich progress bar) into the ``DiskCache``; failures are
  remembered so workers do not retry them.
* ``MediaResolver.fill(sample, specs)`` runs in DataLoader workers: it sets
  ``sample.audio`` / ``sample.frames`` from the cache (decoding on a miss) and
  ``sample.present['audio' | 'visual']``.

Media policy, for a medium that is absent (no path) or broken (missing file,
undecodable, too long):

* ``error``: ``prepare`` raises one ``MediaError``/``DataError`` listing every
  failure; ``fill`` raises ``MediaError``.
* ``skip``: ``fill`` returns False and the caller drops the sample.
* ``zero``: a stand-in (1 s of silence at the spec rate; N black frames at the
  spec size; ``torch.zeros(0)`` for a ``DecoderSpec``, whose encoder decides what
  absent means) with ``present`` False, so models can mask it.

A ``DecoderSpec`` job is decoded by the function it names (imported on first
use, in each process) instead of erckit's decoders, and cached the same way; the
resolver's ``max_duration`` does not apply to it (the encoder decides what is too
long).

Nothing is silently dropped: ``MediaReport`` counts and names every case.
"""

from __future__ import annotations

import functools
import importlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence, get_args

from ..errors import DataError, ErckitError, MediaError
from .cache import DiskCache, PicklesWithoutLock, cache_key, file_identity
from .types import AudioSpec, DecoderSpec, MediaPolicy, MediaSpec, Sample

if TYPE_CHECKING:
    import torch
    from rich.console import Console, RenderableType

POLICIES: tuple[str, ...] = get_args(MediaPolicy)
# What the pipeline stores for each spec kind (cache value key, sample attribute).
_SLOTS = {"audio": ("audio", "audio"), "visual": ("frames", "frames")}
# Stand-in frame size when the spec keeps native resolution (size None).
DEFAULT_STANDIN_SIZE = 224


@dataclass(frozen=True)
class MediaJob:
    """One decode: a file, a span, a spec."""

    path: Path
    start: float | None
    end: float | None
    spec: MediaSpec

    def describe(self) -> str:
        span = "" if self.start is None and self.end is None else f" [{self.start or 0:g}-{self.end if self.end is not None else 'end'}]"
        return f"{self.path}{span}"


@dataclass
class MediaReport:
    """What ``prepare`` (and ``fill``, per process) did.

    Per distinct decode job: ``decoded`` (this run: a cache miss), ``cached``
    (already on disk: a hit), ``failed``. ``fill`` adds its own loads to the
    resolver's ``report`` (per process: DataLoader workers count in their own
    copy), so after ``prepare`` filled the cache, ``decoded`` staying 0 shows that
    training decoded nothing. Per (sample, medium) that could not be had:
    ``skipped`` or ``zeroed`` by policy. ``reasons`` maps a file (or sample key
    for absent media) to why it failed.
    """

    decoded: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    zeroed: int = 0
    reasons: dict[str, str] = field(default_factory=dict)
    skipped_samples: list[str] = field(default_factory=list)

    def render(self, limit: int = 20) -> "RenderableType":
        """A rich table of counts plus the first ``limit`` failures, each named."""
        from rich.console import Group
        from rich.table import Table
        from ..terminal import text

        table = Table(title="media", show_header=True, header_style="bold")
        for name in ("decoded", "cached", "failed", "skipped", "zeroed"):
            table.add_column(name, justify="right")
        table.add_row(*(str(getattr(self, n)) for n in ("decoded", "cached", "failed", "skipped", "zeroed")))
        parts: list[Any] = [table]
        items = sorted(self.reasons.items())
        for where, reason in items[:limit]:
            parts.append(text(f"  {where}: {reason}", style="yellow"))
        if len(items) > limit:
            parts.append(text(f"  ... and {len(items) - limit} more", style="yellow"))
        return Group(*parts)


class MediaResolver(PicklesWithoutLock):
    """Decodes the media samples need, through an optional ``DiskCache``, under a policy."""

    def __init__(
        self,
        cache: DiskCache | None = None,
        policy: MediaPolicy = "error",
        *,
        max_duration: float | None = None,
        workers: int = 2,
    ):
        if policy not in POLICIES:
            raise DataError(f"unknown media policy {policy!r}; choose one of: {', '.join(POLICIES)}")
        self.cache = cache
        self.policy = policy
        self.max_duration = max_duration
        self.workers = max(1, workers)
        self.failures: dict[MediaJob, str] = {}
        self.report = MediaReport()
        self._lock = threading.Lock()

    # -- what a sample needs ------------------------------------------------
    @staticmethod
    def job(sample: Sample, spec: MediaSpec) -> MediaJob | None:
        """The decode job for ``spec`` of the sample's target utterance, or None if absent."""
        target = sample.target
        path = target.audio if spec.modality == "audio" else target.video
        if path is None:
            return None
        start, end = target.span(spec.modality)
        return MediaJob(Path(path), start, end, spec)

    def parts(self, job: MediaJob) -> dict[str, Any]:
        """Cache-key parts: file identity, span, spec, and the duration limit."""
        from .media import DECODER_VERSION

        own = isinstance(job.spec, DecoderSpec)
        return {
            "kind": "media",
            # An own decoder is named by its spec; erckit's decoder version and limit do not apply.
            "decoder": None if own else DECODER_VERSION,
            "file": file_identity(job.path),
            "span": [job.start, job.end],
            "spec": job.spec,
            "max_duration": None if own else self.max_duration,
        }

    # -- decoding -----------------------------------------------------------
    def load(self, job: MediaJob) -> tuple["torch.Tensor", bool]:
        """``(tensor, from_cache)``; raises ``MediaError`` (remembered failures included)."""
        (result,) = self.load_all([job])
        if isinstance(result, MediaError):
            raise result
        return result

    def load_all(self, jobs: Sequence[MediaJob]) -> list[tuple["torch.Tensor", bool] | MediaError]:
        """``load`` for several jobs, each result or its ``MediaError`` in order.

        Jobs on the same file that miss the cache are decoded from one open of it
        (a MELD clip's audio and frames), which saves FFmpeg probing it twice.
        """
        from .media import load_many

        results: list[Any] = [None] * len(jobs)
        misses: dict[Path, list[tuple[int, str | None]]] = {}
        for index, job in enumerate(jobs):
            if job in self.failures:
                results[index] = MediaError(job.path, self.failures[job])
                continue
            key = None
            if self.cache is not None:
                try:
                    key = cache_key(self.parts(job))
                except OSError:
                    results[index] = MediaError(job.path, "file not found")
                    continue
                cached = self.cache.get(key)
                if cached is not None:
                    results[index] = (cached[_SLOTS[job.spec.modality][0]], True)
                    continue
            misses.setdefault(job.path, []).append((index, key))
        for path, pending in misses.items():
            own = [(i, key) for i, key in pending if isinstance(jobs[i].spec, DecoderSpec)]
            pending = [(i, key) for i, key in pending if not isinstance(jobs[i].spec, DecoderSpec)]
            requests = [(jobs[i].spec, jobs[i].start, jobs[i].end) for i, _ in pending]
            values = load_many(path, requests, max_duration=self.max_duration) if requests else []
            values += [decode_own(jobs[i]) for i, _ in own]
            for (index, key), value in zip(pending + own, values):
                if not isinstance(value, MediaError):
                    if key is not None and self.cache is not None:
                        self.cache.put(key, {_SLOTS[jobs[index].spec.modality][0]: value})
                    value = (value, False)
                results[index] = value
        return results

    def prepare(self, samples: Iterable[Sample], specs: Sequence[MediaSpec], progress: bool = True, console: "Console | None" = None) -> MediaReport:
        """Decode every needed (file, span, spec) once into the cache; report everything.

        With policy ``error``, raises after the pass if anything is absent or
        broken, listing every case (not just the first).
        """
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        from ..terminal import progress_bar

        samples = list(samples)
        report = MediaReport()
        jobs: dict[MediaJob, None] = {}
        for sample in samples:
            for spec in specs:
                job = self.job(sample, spec)
                if job is None:
                    self._absent(report, sample, spec, f"no {spec.modality} for this utterance")
                else:
                    jobs.setdefault(job, None)
        failed_keys: dict[MediaJob, str] = {}

        by_file: dict[Path, list[MediaJob]] = {}
        for job in jobs:
            by_file.setdefault(job.path, []).append(job)

        def run(group: list[MediaJob]) -> list[tuple[MediaJob, bool | None, str | None]]:
            return [
                (job, None, result.reason) if isinstance(result, MediaError) else (job, result[1], None)
                for job, result in zip(group, self.load_all(group))
            ]

        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with progress_bar(*columns, console=console or _stderr(), transient=False, enabled=progress) as bar:
            task = bar.add_task("decoding media", total=len(jobs))
            with ThreadPoolExecutor(self.workers) as pool:
                for outcomes in pool.map(run, by_file.values()):
                    for job, hit, reason in outcomes:
                        if reason is not None:
                            report.failed += 1
                            report.reasons[job.describe()] = reason
                            failed_keys[job] = reason
                        elif hit:
                            report.cached += 1
                        else:
                            report.decoded += 1
                        bar.advance(task)
        self.failures.update(failed_keys)
        if failed_keys and self.policy != "error":
            # Count the samples the policy will act on, so the report says how many.
            for sample in samples:
                for spec in specs:
                    job = self.job(sample, spec)
                    if job in failed_keys:
                        self._count_policy(report, sample)
        if self.policy == "error" and report.reasons:
            lines = [f"{where}: {reason}" for where, reason in sorted(report.reasons.items())]
            shown = lines[:20] + ([f"... and {len(lines) - 20} more"] if len(lines) > 20 else [])
            raise DataError(
                f"{len(lines)} media problem(s) with media policy 'error' "
                "(set media_policy = 'skip' or 'zero' to continue without them):\n  " + "\n  ".join(shown)
            )
        self.report = report
        return report

    def fill(self, sample: Sample, specs: Sequence[MediaSpec]) -> bool:
        """Set the sample's media for ``specs``; False means: drop it (policy ``skip``)."""
        jobs = [self.job(sample, spec) for spec in specs]
        present = [job for job in jobs if job is not None]
        loaded = dict(zip(present, self.load_all(present)))
        hits = sum(1 for result in loaded.values() if not isinstance(result, MediaError) and result[1])
        misses = sum(1 for result in loaded.values() if not isinstance(result, MediaError) and not result[1])
        with self._lock:
            self.report.cached += hits
            self.report.decoded += misses
        for spec, job in zip(specs, jobs):
            attribute = _SLOTS[spec.modality][1]
            try:
                if job is None:
                    raise MediaError(f"{sample.key}", f"no {spec.modality} for this utterance")
                result = loaded[job]
                if isinstance(result, MediaError):
                    raise result
                tensor = result[0]
            except MediaError as error:
                with self._lock:
                    self.report.reasons.setdefault(error.path, error.reason)
                if self.policy == "error":
                    raise
                if self.policy == "skip":
                    with self._lock:
                        self.report.skipped += 1
                        self.report.skipped_samples.append(sample.key)
                    return False
                with self._lock:
                    self.report.zeroed += 1
                setattr(sample, attribute, stand_in(spec))
                sample.present[spec.modality] = False
                continue
            setattr(sample, attribute, tensor)
            sample.present[spec.modality] = True
        return True

    def _absent(self, report: MediaReport, sample: Sample, spec: MediaSpec, reason: str) -> None:
        report.reasons[f"{sample.key} ({spec.modality})"] = reason
        if self.policy != "error":
            self._count_policy(report, sample)

    def _count_policy(self, report: MediaReport, sample: Sample) -> None:
        if self.policy == "skip":
            report.skipped += 1
            report.skipped_samples.append(sample.key)
        else:
            report.zeroed += 1


def decode_own(job: MediaJob) -> "torch.Tensor | MediaError":
    """A ``DecoderSpec`` job through its function: the tensor, or the ``MediaError`` it raised."""
    import torch

    from .media import check_file_and_span

    spec = job.spec
    assert isinstance(spec, DecoderSpec)
    problem = check_file_and_span(job.path, job.start, job.end)
    if problem is not None:
        return problem
    try:
        value = decoder_function(spec.decoder)(job.path, job.start, job.end, **dict(spec.options))
    except MediaError as error:
        return error
    if not isinstance(value, torch.Tensor):
        raise ErckitError(f"decoder {spec.decoder!r} returned {type(value).__name__} for {job.path}, not a torch.Tensor")
    return value


@functools.lru_cache(maxsize=None)
def decoder_function(decoder: str) -> Callable[..., Any]:
    """The function a ``DecoderSpec.decoder`` (``"package.module:function"``) names, imported once per process."""
    module_name, _, attribute = decoder.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ErckitError(f"media decoder {decoder!r}: cannot import {module_name!r} ({error})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ErckitError(f"media decoder {decoder!r}: module {module_name!r} has no function {attribute!r}")
    return function


def stand_in(spec: MediaSpec) -> "torch.Tensor":
    """The placeholder for an absent medium: 1 s of silence, N black frames, or (own decoder) empty."""
    import torch

    if isinstance(spec, DecoderSpec):
        return torch.zeros(0)
    if isinstance(spec, AudioSpec):
        return torch.zeros(spec.sample_rate, dtype=torch.float32)
    size = spec.size or DEFAULT_STANDIN_SIZE
    return torch.zeros(spec.num_frames, size, size, 3, dtype=torch.uint8)


def _stderr() -> "Console":
    from rich.console import Console

    return Console(stderr=True)


__all__ = ["MediaJob", "MediaReport", "MediaResolver", "POLICIES", "stand_in", "cache_key"]
