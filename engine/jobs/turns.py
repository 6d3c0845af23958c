"""A fair line for the short computations browser sessions ask of the server (the Playground's attacks).

At most `slots` run at once (one per core); the rest wait first come, first served, and each waiting
session is told its place. A session holds at most one place: asking again (a rerun, a new image)
gives up its earlier place, so no session can queue a dozen attacks ahead of a classmate.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import count

from engine.errors import EngineError


class LineTimeout(EngineError):
    """A session waited longer than its limit for a turn."""


class Superseded(EngineError):
    """The same session asked again; its earlier place in line is given up."""


class Turns:
    """First come, first served turns over `slots` slots, one place per holder."""

    def __init__(self, slots: int):
        self.slots = max(1, slots)
        self._changed = threading.Condition()
        self._line: list[tuple[int, str]] = []  # (ticket, holder), in arrival order
        self._running = 0
        self._tickets = count()

    def waiting(self) -> int:
        """How many are waiting now."""
        with self._changed:
            return len(self._line)

    def running(self) -> int:
        """How many hold a slot now."""
        with self._changed:
            return self._running

    @contextmanager
    def turn(self, holder: str, on_wait: Callable[[int], None] | None = None, timeout: float = 300.0) -> Iterator[None]:
        """Hold a slot for the `with` block, after those who asked earlier. While waiting, `on_wait(place)`
        is called whenever the place changes (1: next), outside the lock. Raises Superseded if `holder`
        asks again meanwhile, LineTimeout after `timeout` seconds."""
        ticket = self._join(holder)
        try:
            self._wait(ticket, on_wait, time.monotonic() + timeout)
        except BaseException:
            self._leave(ticket)
            raise
        try:
            yield
        finally:
            with self._changed:
                self._running -= 1
                self._changed.notify_all()

    def _join(self, holder: str) -> int:
        ticket = next(self._tickets)
        with self._changed:
            self._line = [(t, h) for t, h in self._line if h != holder]  # one place per holder
            self._line.append((ticket, holder))
            self._changed.notify_all()
        return ticket

    def _leave(self, ticket: int) -> None:
        with self._changed:
            self._line = [(t, h) for t, h in self._line if t != ticket]
            self._changed.notify_all()

    def _wait(self, ticket: int, on_wait: Callable[[int], None] | None, deadline: float) -> None:
        shown = 0
        while True:
            with self._changed:
                tickets = [t for t, _ in self._line]
                if ticket not in tickets:
                    raise Superseded("a newer request from the same session took this place in line")
                place = tickets.index(ticket) + 1
                if place == 1 and self._running < self.slots:
                    self._line.pop(0)
                    self._running += 1
                    return
                if time.monotonic() > deadline:
                    raise LineTimeout(f"waited past the limit at place {place} in line; try again")
                if place == shown:
                    self._changed.wait(timeout=max(0.0, min(1.0, deadline - time.monotonic())))
                    continue
            shown = place
            if on_wait is not None:
                on_wait(place)


PLAYGROUND = Turns(os.cpu_count() or 1)
"""The server's one line for Playground attacks: one attack per core at a time."""
