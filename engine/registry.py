"""Name → object registries: one decorator per family, duplicates refused, docstring = help."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from engine.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named family of registered classes or functions (datasets, models, schedules, ...).

    >>> MODELS = Registry("model")
    >>> @MODELS.register("mlp")
    ... def mlp(**kw): ...
    >>> MODELS.names()
    ['mlp']
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that files its target under `name` (lowercase, unique)."""
        if name != name.lower():
            raise ValueError(f"{self.kind} name {name!r} must be lowercase")

        def decorate(obj: T) -> T:
            if name in self._entries:
                raise DuplicateNameError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorate

    def get(self, name: str) -> T:
        """Return the entry called `name`, or raise UnknownNameError listing the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; choose from {self.names()}") from None

    def create(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call the entry called `name` with the given arguments."""
        # T is any entry; create() is only called on registries of callables (classes and factories)
        return self.get(name)(*args, **kwargs)  # type: ignore[operator]

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def help(self, name: str) -> str:
        """The entry's docstring, cleaned: the UI and CLI show it as help text."""
        return inspect.getdoc(self.get(name)) or ""

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self):
        return iter(self.names())


def import_submodules(package: str, path: Iterable[str], skip: Iterable[str] = ()) -> None:
    """Import every module of a package (its `__name__` and `__path__`) but those in `skip`, so that each
    registers its entries: a new attack, method or paper check is one new file, discovered."""
    skipped = set(skip)
    for module in pkgutil.iter_modules(list(path)):
        if module.name not in skipped:
            importlib.import_module(f"{package}.{module.name}")
