"""`python -m bench.timed_server LOG streamlit-arguments…`: Streamlit's own command line, with every full
script run's wall time (from its start on the server to its end, fragment runs left out) appended to
LOG as one number per line. The classroom bench reads it: the server's time for a page, apart from
how fast the browsers read their sockets."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path


def install(log: Path) -> None:
    """Time every full script run of this server into `log`."""
    from streamlit.runtime.scriptrunner.script_runner import ScriptRunner

    run_script, lock = ScriptRunner._run_script, threading.Lock()

    def timed(self, rerun_data) -> None:
        started = time.perf_counter()
        try:
            run_script(self, rerun_data)
        finally:
            if not rerun_data.fragment_id_queue:
                with lock, log.open("a") as handle:
                    handle.write(f"{time.perf_counter() - started:.4f}\n")

    ScriptRunner._run_script = timed  # type: ignore[method-assign]


if __name__ == "__main__":
    install(Path(sys.argv[1]))
    from streamlit.web.cli import main

    sys.argv = ["streamlit", *sys.argv[2:]]
    main()
