"""The Playground's line (engine.jobs.turns): at most one attack per slot at a time, first come first
served, one place per session, each waiting session told its place, and nobody waits forever."""

from __future__ import annotations

import threading

import pytest

from engine.jobs.turns import LineTimeout, Superseded, Turns


def hold_slots(turns: Turns, holders: list[str]) -> tuple[list[threading.Thread], threading.Event, threading.Barrier]:
    """Threads that take a turn each and keep it until `release` is set."""
    release, started = threading.Event(), threading.Barrier(len(holders) + 1)

    def hold(holder: str) -> None:
        with turns.turn(holder):
            started.wait()
            release.wait()

    threads = [threading.Thread(target=hold, args=(h,)) for h in holders]
    for thread in threads:
        thread.start()
    started.wait()
    return threads, release, started


def queue_up(
    turns: Turns, holders: list[str], order: list[str], places: dict[str, list[int]]
) -> list[threading.Thread]:
    """One waiting thread per holder, joined in the given order (each in line before the next asks)."""
    threads = []
    for holder in holders:
        joined = threading.Event()

        def wait(holder=holder, joined=joined) -> None:
            def on_wait(place: int) -> None:
                places.setdefault(holder, []).append(place)
                joined.set()

            with turns.turn(holder, on_wait):
                order.append(holder)

        thread = threading.Thread(target=wait)
        thread.start()
        joined.wait(timeout=10)
        threads.append(thread)
    return threads


def test_turns_go_first_come_first_served_and_each_waiter_is_told_its_place():
    turns = Turns(slots=2)
    holders, release, _ = hold_slots(turns, ["a", "b"])
    assert turns.running() == 2
    order: list[str] = []
    places: dict[str, list[int]] = {}
    waiters = queue_up(turns, ["c", "d", "e"], order, places)
    assert turns.waiting() == 3 and [places[h][0] for h in "cde"] == [1, 2, 3]
    release.set()
    for thread in holders + waiters:
        thread.join(timeout=10)
    assert order == ["c", "d", "e"]
    assert places["e"] == sorted(places["e"], reverse=True)  # a place only ever improves
    assert turns.running() == 0 and turns.waiting() == 0


def test_never_more_than_the_slots_run_at_once():
    turns, lock, peak, now = Turns(slots=2), threading.Lock(), [0], [0]

    def attack(holder: str) -> None:
        with turns.turn(holder):
            with lock:
                now[0] += 1
                peak[0] = max(peak[0], now[0])
            threading.Event().wait(0.01)  # a short computation
            with lock:
                now[0] -= 1

    threads = [threading.Thread(target=attack, args=(f"s{i}",)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert peak[0] == 2


def test_asking_again_gives_up_the_earlier_place():
    turns = Turns(slots=1)
    holders, release, _ = hold_slots(turns, ["teacher"])
    outcome: list[str] = []
    joined = threading.Event()

    def first_request() -> None:
        try:
            with turns.turn("student", lambda place: joined.set()):
                outcome.append("first ran")
        except Superseded:
            outcome.append("first superseded")

    thread = threading.Thread(target=first_request)
    thread.start()
    joined.wait(timeout=10)
    second = queue_up(turns, ["student"], outcome, {})
    assert turns.waiting() == 1  # one place for the student, not two
    release.set()
    for t in [*holders, thread, *second]:
        t.join(timeout=10)
    assert sorted(outcome) == ["first superseded", "student"]


def test_a_wait_past_its_limit_ends_in_one_line_and_leaves_the_line():
    turns = Turns(slots=1)
    holders, release, _ = hold_slots(turns, ["a"])
    with pytest.raises(LineTimeout, match="place 1 in line"):
        with turns.turn("b", timeout=0.2):
            pass
    assert turns.waiting() == 0
    release.set()
    for thread in holders:
        thread.join(timeout=10)


def test_an_error_inside_a_turn_frees_its_slot():
    turns = Turns(slots=1)
    with pytest.raises(ValueError):
        with turns.turn("a"):
            raise ValueError("the attack failed")
    assert turns.running() == 0
    with turns.turn("b"):
        assert turns.running() == 1
