"""Who is writing a run: the writing process's identity in the manifest, and whether it is
still alive.

A run killed outright (SIGKILL, OOM, power loss) cannot write anything, so the manifest records
its writer (pid, host and start time) and a reader decides: a ``running`` run whose process is
gone from this host reads as ``stale``.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any


def proc_stat(pid: int) -> tuple[str, int] | None:
    """State and start time (clock ticks since boot) of process ``pid`` from ``/proc`` (Linux),
    or None where unknown. The start time tells a live writer from a new process that reuses
    its number; state ``Z`` is a process that has ended but is not yet reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])  # fields 3 and 22; the name before ")" may hold spaces
    except (OSError, IndexError, ValueError):
        return None


def this_process() -> dict[str, Any]:
    pid = os.getpid()
    stat = proc_stat(pid)
    return {"pid": pid, "host": socket.gethostname(), "start": stat[1] if stat else None}


def process_gone(process: Any) -> bool:
    """Whether the process that wrote a manifest has certainly ended: only decidable for a
    process of this host."""
    if not isinstance(process, dict) or process.get("host") != socket.gethostname():
        return False
    pid = process.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        pass
    stat = proc_stat(pid)
    if stat is None:
        return False
    state, start = stat
    return state == "Z" or process.get("start") not in (None, start)


def run_status(manifest: dict[str, Any]) -> str:
    """The status a manifest records, except that a ``running`` run whose process has ended
    without a word (SIGKILL, OOM) is ``stale``."""
    status = str(manifest.get("status"))
    if status == "running" and process_gone(manifest.get("process")):
        return "stale"
    return status
