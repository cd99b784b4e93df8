"""The one error family erckit raises for problems a user can fix.

The CLI prints any ``ErckitError`` as a short message and exits non-zero; every
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class ErckitError(Exception):
    """Base class of every error a user can act on (bad recipe, missing file, ...)."""

    exit_code = 1


class UsageError(ErckitError):
    """The command line itself is wrong (unknown flag value, bad ``--set``)."""

    exit_code = 2


class UnknownComponentError(ErckitError):
    """A registry lookup named a component that no installed plugin provides."""


class RecipeError(ErckitError):
    """A recipe is invalid; carries every problem found, each with its path."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        header = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__(header + "\n" + "\n".join(f"  - {p}" for p in self.problems))


class DataError(ErckitError):
    """A dataset file is missing, malformed, or holds values erckit cannot use."""


class MediaError(DataError):
    """An audio or video file is missing, undecodable, empty or too long."""

    def __init__(self, path: object, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class ModelLoadError(ErckitError):
    """A model directory is missing, incomplete or does not match its config."""


class PredictionError(ErckitError):
    """The model gave no usable answer for an input (NaN or inf scores)."""


class CheckpointError(ErckitError):
    """A training checkpoint cannot be read or written."""


class TrainingError(ErckitError):
    """Training cannot continue (NaN loss, impossible stage order, ...)."""


class WriteError(ErckitError):
    """A file or directory could not be written (disk full, permission, a file where a directory belongs)."""

    def __init__(self, path: object, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"cannot write {self.path}: {cause}")
