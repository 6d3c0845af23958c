"""The classroom bench's instruments (bench/classroom.py, bench/timed_server.py): the websocket reading
that gives a page's server time, the percentile, and the script-run timer."""

from __future__ import annotations

import asyncio

import pytest
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench.classroom import Finishes, percentile


def finished(status: int) -> bytes:
    message = ForwardMsg()
    message.script_finished = status  # type: ignore[assignment]  # the enum's wire value
    return message.SerializeToString()


def rerun() -> bytes:
    message = BackMsg()
    message.rerun_script.query_string = ""
    return message.SerializeToString()


def test_a_page_is_timed_from_its_request_to_its_full_run_finishing():
    async def scenario() -> tuple[float, int]:
        finishes = Finishes()
        count = len(finishes.served)
        finishes.sent(rerun())
        finishes.received(finished(ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY))  # a fragment: not the page
        finishes.received(finished(ForwardMsg.FINISHED_EARLY_FOR_RERUN))
        assert len(finishes.served) == count
        finishes.received("a text frame")
        finishes.received(finished(ForwardMsg.FINISHED_SUCCESSFULLY))
        return await finishes.after(count), len(finishes.served)

    seconds, count = asyncio.run(scenario())
    assert count == 2 and 0 <= seconds < 1


def test_percentile_interpolates_and_takes_a_single_value():
    assert percentile([1.0], 0.95) == 1.0
    assert percentile([float(i) for i in range(1, 101)], 0.95) == pytest.approx(95.05)
    assert percentile([float(i) for i in range(1, 101)], 0.5) == pytest.approx(50.5)


def test_the_timed_server_logs_full_runs_only(tmp_path):
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    from bench.timed_server import install

    class Rerun:
        def __init__(self, fragments: list[str]):
            self.fragment_id_queue = fragments

    original = ScriptRunner._run_script
    ScriptRunner._run_script = lambda self, rerun_data: None  # type: ignore[method-assign]
    try:
        install(tmp_path / "runs.txt")
        ScriptRunner._run_script(None, Rerun([]))
        ScriptRunner._run_script(None, Rerun(["fragment"]))
        ScriptRunner._run_script(None, Rerun([]))
    finally:
        ScriptRunner._run_script = original  # type: ignore[method-assign]
    lines = (tmp_path / "runs.txt").read_text().split()
    assert len(lines) == 2 and all(float(x) >= 0 for x in lines)
