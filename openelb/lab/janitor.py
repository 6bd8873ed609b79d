"""Removes what testbed runs left behind: their processes, namespaces and run folders.

Three callers:
- :meth:`openelb.lab.netns.Testbed.close` removes its own run;
- a per-run *reaper* (``python -m openelb.lab.janitor --reap RUN --owner PID``), started detached by
  every testbed, waits for the owner process to die and then removes the run: a test runner killed
  with SIGKILL leaves nothing behind for long;
- ``python -m openelb.lab.janitor`` (``make janitor``, and every test session at start) removes
  runs whose owner is dead. It only ever touches namespaces with the testbed prefix.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import sys
import time
from pathlib import Path

from openelb.lab.netns import (
    PREFIX,
    RUN_DIR,
    list_netns,
    netns_pids,
    process_start_time,
    run,
)


def _kill_group(pid: int, start: int | None) -> None:
    """SIGKILL ``pid``'s process group if ``pid`` is still the process we started."""
    if start is None or process_start_time(pid) != start:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _read_record(run_dir: Path) -> dict[str, object]:
    try:
        data = json.loads((run_dir / "record.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _owner_alive(record: dict[str, object]) -> bool:
    pid, start = record.get("owner_pid"), record.get("owner_start")
    return isinstance(pid, int) and start is not None and process_start_time(pid) == start


def remove_run(run_id: str, run_dir: Path | None = None) -> list[str]:
    """Kill the run's processes and delete its namespaces; return the namespaces removed."""
    run_dir = run_dir or RUN_DIR / run_id
    record = _read_record(run_dir)
    pids = record.get("pids", [])
    for entry in pids if isinstance(pids, list) else []:
        if isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], int):
            _kill_group(entry[0], entry[1] if isinstance(entry[1], int) else None)
    removed = []
    for ns in list_netns():
        if not ns.startswith(f"{run_id}-"):
            continue
        # Anything still running in the namespace (children that escaped the process group).
        for _attempt in range(3):
            pids_in_ns = netns_pids(ns)
            if not pids_in_ns:
                break
            for pid in pids_in_ns:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        run(["ip", "netns", "delete", ns], check=False)
        removed.append(ns)
    shutil.rmtree(run_dir, ignore_errors=True)
    return removed


def collect_leftovers() -> list[str]:
    """Remove every run whose owner is dead; return the namespaces removed."""
    runs: set[str] = set()
    for ns in list_netns():
        if ns.startswith(PREFIX) and "-" in ns:
            runs.add(ns.split("-", 1)[0])
    if RUN_DIR.is_dir():
        runs.update(p.name for p in RUN_DIR.iterdir() if p.name.startswith(PREFIX))
    removed: list[str] = []
    for run_id in sorted(runs):
        if _owner_alive(_read_record(RUN_DIR / run_id)):
            continue
        removed += remove_run(run_id)
    return removed


def reap(run_id: str, owner: int) -> None:
    """Wait for ``owner`` to exit, then remove the run (unless the owner already did)."""
    try:
        fd = os.pidfd_open(owner)
    except ProcessLookupError:
        fd = -1
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    if fd >= 0:
        select.select([fd], [], [])
        os.close(fd)
    remove_run(run_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reap", metavar="RUN_ID", help="wait for --owner to exit, then clean up")
    parser.add_argument("--owner", type=int, help="pid of the process owning the run")
    args = parser.parse_args(argv)
    if args.reap:
        if args.owner is None:
            parser.error("--reap needs --owner")
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        reap(args.reap, args.owner)
        return 0
    removed = collect_leftovers()
    if removed:
        print(f"janitor: removed {len(removed)} leftover namespaces: {' '.join(removed)}")
    else:
        print("janitor: nothing left over")
    return 0


if __name__ == "__main__":
    sys.exit(main())
