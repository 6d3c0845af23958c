"""Which process holds a run, and whether it still runs: a token of host, pid and start time.

The start time (from /proc/<pid>/stat) tells a live holder from a new process that reused its pid.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None if there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def process_token(pid: int | None = None) -> str:
    """'host:pid:start' of this process (or of `pid`)."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def token_alive(token: str | None) -> bool | None:
    """Whether the process of a token still runs: None when it cannot be told (another host, no /proc)."""
    if not token or token.count(":") < 2:
        return None
    host, pid, start = token.rsplit(":", 2)
    if host != socket.gethostname() or not pid.isdigit() or start == "?" or not Path("/proc/self/stat").exists():
        return None
    return _start_time(int(pid)) == start


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def owner_gone(owner: str | None) -> bool:
    """Whether a worker's owner string ('host:pid:…') names a process on this host that has exited."""
    host, _, rest = (owner or "").partition(":")
    pid = rest.split(":", 1)[0]
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))
