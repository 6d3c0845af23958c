"""Exceptions raised by the engine; each names the argument, the value and the valid choices."""

import importlib


class EngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class SpecError(EngineError):
    """A spec failed validation; `problems` holds one 'field.path: message' line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class UnknownNameError(EngineError, KeyError):
    """A registry has no entry of that name."""

    def __str__(self) -> str:
        return str(self.args[0])


class DuplicateNameError(EngineError, ValueError):
    """A registry already has an entry of that name."""


class NotFoundError(EngineError, LookupError):
    """A run, step or checkpoint is not in the store."""


class IntegrityError(EngineError):
    """A checkpoint's SHA-256 differs from the one recorded when it was published."""


class DataUnavailableError(EngineError):
    """A dataset is neither on disk nor downloadable; the message says how to get it."""


class MissingDependency(EngineError):
    """An optional package a feature needs is not installed; the message says how to install it."""


def optional_import(module: str, feature: str, install: str):
    """Import an optional dependency where a feature uses it; MissingDependency saying how to get it."""

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(f"{feature} needs {module}, which is not installed: {install}") from None


class LeaseLost(EngineError):
    """A worker no longer owns its job (its lease expired and another attempt took over)."""


class Cancelled(EngineError):
    """The user cancelled the job; the worker stops between batches."""


class StoreError(EngineError):
    """The cache cannot be used as it is (not a folder, read-only for a write, damaged, too new); the
    message says what is wrong and what to do, in one line, without the cache's absolute path."""


class WriteFailed(StoreError):
    """A write into the cache failed for a reason the user can mend (a full disk, a read-only folder)."""


WRITE_FAILURES = {
    "ENOSPC": "the disk is full",
    "EDQUOT": "the disk quota is used up",
    "EROFS": "the file system is read-only",
    "EACCES": "permission denied",
    "EPERM": "permission denied",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_READONLY": "the folder or database is read-only",
    "SQLITE_CANTOPEN": "the database cannot be opened for writing",
    "SQLITE_PERM": "permission denied",
}
"""Why a write failed, in words, by errno name or SQLite error name."""


def write_failure(what: str, reason: str | None) -> WriteFailed | None:
    """A one-line StoreError for a failed write of `what` (a name inside the cache) when `reason` (an
    errno or SQLite error name) is one a user can mend; None for any other failure."""
    words = WRITE_FAILURES.get(reason or "")
    if words is None:
        return None
    return WriteFailed(
        f"{what}: cannot write ({words}); free space or make the cache writable, then run the spec again "
        "(the steps already committed are kept)"
    )
