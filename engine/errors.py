"""Exceptions raised by the engine; each names the argument, the value and the valid choices."""


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


class LeaseLost(EngineError):
    """A worker no longer owns its job (its lease expired and another attempt took over)."""


class Cancelled(EngineError):
    """The user cancelled the job; the worker stops between batches."""


class StoreError(EngineError):
    """The cache cannot be used as it is (not a folder, read-only for a write, damaged, too new); the
    message says what is wrong and what to do, in one line, without the cache's absolute path."""
