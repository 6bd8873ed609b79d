"""Run keepalived as the speaker's child: validated configs, reloads, restarts, clean stops.

What OpenELB's users ran into (keepalived crashes and segfaults, VIPs left behind, broken
configs taking VIP mode down) decides the rules here:

- every new config is checked with ``keepalived -t`` first; a config it refuses never replaces
  the running one, and the error is kept, logged and counted;
- keepalived runs in the foreground (``--dont-fork``) with its own pid files, config and notify
  FIFO under ``runtime_dir``, so several speakers (tests, the lab) never share anything;
- a reload (SIGHUP) happens only when the rendered text changed, and never before keepalived
  said its start is complete: keepalived 2.2.7 dies of a SIGHUP that comes before it installed
  its handler, and silently drops one that comes while it starts its VRRP child (measured
  here: a window of ~20-40 ms after exec on an idle machine, far longer under load). A dropped
  reload leaves the node on its first config — at the speaker's start often the one where it
  saw no other node and advertised only to itself — and two nodes master of the same VIP
  until something else changes; so a config that arrives during the start waits and is
  delivered the moment keepalived is ready;
- when keepalived dies, its VIPs are taken off the NIC at once (another node is taking over: two
  holders would be split brain), then it is restarted after a capped, doubling delay;
- keepalived gets SIGTERM when the speaker dies (``setpriv --pdeathsig``): an orphan would keep
  serving a config nobody updates any more (a deleted Service's VIP, a node set long gone);
  one left running anyway (no setpriv) is stopped on the next start, and VIPs a crashed
  keepalived left on the NIC are removed before the new one starts;
- stop sends SIGTERM (keepalived sends priority 0, so a backup takes over at once, and releases
  its VIPs), then kills after a timeout, then removes whatever VIPs remain.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from openelb import metrics
from openelb.config import KeepalivedSettings
from openelb.keepalived.nicaddresses import AddressError, remove_addresses
from openelb.keepalived.notify import FifoReader, Transition

log = logging.getLogger(__name__)

STARTUP_COMPLETE = "Startup complete"
"""What keepalived's VRRP process logs once it handles signals (a reload) normally."""
STARTUP_GRACE = 10.0
"""Seconds after which a keepalived that never logged :data:`STARTUP_COMPLETE` (another version,
other wording) gets a held reload anyway, rather than never."""

VipsByInterface = Mapping[str, set[str] | frozenset[str]]


class KeepalivedError(RuntimeError):
    """keepalived could not be validated, started or stopped; the message says why."""


@dataclass(frozen=True)
class ApplyResult:
    """What :meth:`KeepalivedSupervisor.apply` did."""

    applied: bool
    """The config is now the one in use (or already was)."""
    action: str
    """``unchanged`` | ``started`` | ``reloaded`` | ``rejected`` | ``stopped``."""
    error: str = ""
    """Why keepalived refused the config (``rejected`` only)."""


@dataclass(frozen=True)
class RuntimePaths:
    """Everything the supervisor keeps on disk, under one directory per speaker."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "keepalived.conf"

    @property
    def candidate(self) -> Path:
        return self.root / "keepalived.conf.new"

    @property
    def pid(self) -> Path:
        return self.root / "keepalived.pid"

    @property
    def vrrp_pid(self) -> Path:
        return self.root / "vrrp.pid"

    @property
    def checkers_pid(self) -> Path:
        return self.root / "checkers.pid"

    @property
    def fifo(self) -> Path:
        return self.root / "notify.fifo"

    @property
    def held(self) -> Path:
        """Record of the VIPs keepalived may have put on NICs (interface -> addresses)."""
        return self.root / "held-vips.json"


def _describe_exit(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"exit {code}"


class KeepalivedSupervisor:
    """One supervised keepalived; :meth:`start`, then :meth:`apply` configs, then :meth:`stop`.

    ``netns`` runs keepalived, its validation and the VIP cleanup inside a named network
    namespace (tests and the lab); the speaker on a node leaves it None.
    """

    def __init__(
        self,
        *,
        settings: KeepalivedSettings,
        runtime_dir: Path | None = None,
        netns: str | None = None,
        on_transition: Callable[[Transition], None] | None = None,
    ) -> None:
        self.settings = settings
        self.paths = RuntimePaths(Path(runtime_dir or settings.runtime_dir))
        self.netns = netns
        self._on_transition = on_transition
        self._lock = threading.RLock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0
        self._ready: subprocess.Popen[bytes] | None = None
        """The keepalived that logged :data:`STARTUP_COMPLETE` (a SIGHUP to it is a reload)."""
        self._reload_held = False
        """A config was installed during the start; SIGHUP it once keepalived is ready."""
        self._config_text: str | None = None
        self._rejected_text: str | None = None
        self._rejected_error = ""
        self._vips: dict[str, set[str]] = {}
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None
        self._reader: FifoReader | None = None
        self._log_tail: collections.deque[str] = collections.deque(maxlen=200)
        self.last_error = ""
        """Why the last config was refused or keepalived last died ("" if never)."""
        self.restarts = 0
        self.reloads = 0

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare the runtime directory, clean up after a predecessor, watch the FIFO."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self._stop_stale()
        self._cleanup_vips(self._read_held())
        self._reader = FifoReader(self.paths.fifo, self._transition).start()
        self._stopping.clear()
        self._monitor = threading.Thread(target=self._monitor_loop, name="keepalived", daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        """Stop keepalived (it releases its VIPs), remove any VIP left, stop watching."""
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join(10.0)
        with self._lock:
            self._terminate()
            self._cleanup_vips(self._read_held())
            self.paths.held.unlink(missing_ok=True)
            self._config_text = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> KeepalivedSupervisor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """The keepalived parent process, if running."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                return None
            return self._proc.pid

    def running(self) -> bool:
        return self.pid is not None

    def log_tail(self) -> str:
        """keepalived's recent output (for error messages and tests)."""
        return "\n".join(self._log_tail)

    # --- configuration ---------------------------------------------------------------------------

    def validate(self, text: str) -> str:
        """Check ``text`` with ``keepalived -t``; returns "" if valid, else its complaint."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self.paths.candidate.write_text(text)
        cmd = [*self._prefix(), self.settings.binary, "-t", "-f", str(self.paths.candidate)]
        try:
            done = subprocess.run(
                cmd,
                capture_output=True,
                text=True,
                timeout=self.settings.validate_timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"keepalived -t took longer than {self.settings.validate_timeout}s"
        except OSError as exc:
            return f"cannot run {self.settings.binary}: {exc}"
        if done.returncode == 0:
            return ""
        complaint = (done.stderr + done.stdout).strip() or f"exit {done.returncode}"
        return f"keepalived -t refused the config ({done.returncode}): {complaint}"

    def apply(self, text: str, vips: VipsByInterface) -> ApplyResult:
        """Use ``text`` (which puts ``vips`` on NICs) from now on, if keepalived accepts it.

        An empty ``vips`` stops keepalived: there is nothing for it to do.
        """
        with self._lock:
            if text == self._config_text:
                # Running, or dead and waiting out its restart delay: the monitor restarts it;
                # a control loop re-applying the same state must not defeat the backoff.
                return ApplyResult(True, "unchanged")
            if not any(vips.values()):
                self._terminate()
                self._cleanup_vips(self._read_held())
                self._config_text = text
                self._vips = {}
                self._write_held({})
                return ApplyResult(True, "stopped")
            if text == self._rejected_text:
                # The control loop re-applies on every watch event: judge a config only once.
                return ApplyResult(False, "rejected", self._rejected_error)
            error = self.validate(text)
            if error:
                self.last_error = error
                self._rejected_text, self._rejected_error = text, error
                metrics.keepalived_config_rejected()
                log.error("keeping the previous keepalived config: %s", error)
                return ApplyResult(False, "rejected", error)
            self._rejected_text = None
            # Record the union first: until the reload finishes either set may be on the NIC.
            previous = self._vips
            self._vips = {ifname: set(addrs) for ifname, addrs in vips.items()}
            self._write_held(_union(previous, self._vips))
            os.replace(self.paths.candidate, self.paths.config)
            self._config_text = text
            if self.running():
                self._reload_held = True
                self._deliver_reload()
                return ApplyResult(True, "reloaded")
            self._spawn()
            return ApplyResult(True, "started")

    # --- internals -------------------------------------------------------------------------------

    def _prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns] if self.netns else []

    def _spawn(self) -> None:
        cmd = [
            *self._prefix(),
            *_death_signal(),
            self.settings.binary,
            "--dont-fork",
            "--vrrp",
            "--log-console",
            "--log-detail",
            "--no-syslog",
            "-f",
            str(self.paths.config),
            "-p",
            str(self.paths.pid),
            "-r",
            str(self.paths.vrrp_pid),
            "-c",
            str(self.paths.checkers_pid),
        ]
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C to the speaker must not reach keepalived
            )
        except OSError as exc:
            raise KeepalivedError(f"cannot start {self.settings.binary}: {exc}") from exc
        self._proc = proc
        self._started_at = time.monotonic()
        self._reload_held = False  # it reads the current config itself
        metrics.keepalived_running(True)
        threading.Thread(
            target=self._pump_output, args=(proc,), name="keepalived-log", daemon=True
        ).start()
        log.info("keepalived started (pid %d)", proc.pid)

    def _pump_output(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                self._log_tail.append(line)
                log.debug("keepalived: %s", line)
                if STARTUP_COMPLETE in line:
                    self._ready = proc
                    # Never wait for the lock here: its holder may be waiting for keepalived
                    # to exit, and keepalived for this pipe to drain. The monitor delivers
                    # within 50 ms otherwise.
                    if self._lock.acquire(blocking=False):
                        try:
                            self._deliver_reload()
                        finally:
                            self._lock.release()

    def _deliver_reload(self) -> None:
        """SIGHUP a held reload if keepalived can take it now (lock held)."""
        proc = self._proc
        if not self._reload_held or proc is None or proc.poll() is not None:
            return
        if self._ready is not proc:
            if time.monotonic() - self._started_at < STARTUP_GRACE:
                return
            log.warning(
                "keepalived did not log %r within %.0fs; reloading it anyway",
                STARTUP_COMPLETE,
                STARTUP_GRACE,
            )
            self._ready = proc
        self._reload_held = False
        proc.send_signal(signal.SIGHUP)
        self.reloads += 1
        metrics.keepalived_reloaded()

    def _terminate(self) -> None:
        """Stop the running keepalived (lock held)."""
        proc = self._proc
        self._proc = None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.settings.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("keepalived ignored SIGTERM; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5.0)
        self._kill_orphan_children()
        metrics.keepalived_running(False)

    def _kill_orphan_children(self) -> None:
        """keepalived's VRRP child may outlive a parent killed outright: it must not hold VIPs."""
        for pidfile in (self.paths.vrrp_pid, self.paths.checkers_pid, self.paths.pid):
            pid = _read_pid(pidfile)
            if pid is not None and _is_ours(pid, self.paths.config):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            pidfile.unlink(missing_ok=True)

    def _stop_stale(self) -> None:
        """A keepalived of ours from an earlier speaker (killed outright) is still running."""
        pid = _read_pid(self.paths.pid)
        if pid is not None and _is_ours(pid, self.paths.config):
            log.warning("stopping keepalived (pid %d) left by an earlier speaker", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + self.settings.stop_timeout
            while time.monotonic() < deadline and _is_ours(pid, self.paths.config):
                time.sleep(0.02)
        self._kill_orphan_children()

    def _monitor_loop(self) -> None:
        backoff = self.settings.restart_backoff_first
        while not self._stopping.is_set():
            with self._lock:
                proc = self._proc
            if proc is None or proc.poll() is None:
                if proc is not None and self._reload_held:
                    with self._lock:
                        self._deliver_reload()  # only the grace fallback is left to do here
                self._stopping.wait(0.05)
                continue
            code = proc.returncode
            with self._lock:
                if self._proc is not proc:  # replaced meanwhile (apply/stop)
                    continue
                ran = time.monotonic() - self._started_at
                reason = _describe_exit(code)
                self.last_error = f"keepalived died ({reason}) after {ran:.1f}s"
                log.error("%s; last output:\n%s", self.last_error, self.log_tail()[-2000:])
                metrics.keepalived_running(False)
                self._proc = None
                self._kill_orphan_children()
                self._cleanup_vips(self._read_held())
            if ran >= self.settings.restart_backoff_reset:
                backoff = self.settings.restart_backoff_first
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, self.settings.restart_backoff_max)
            with self._lock:
                if self._proc is None and self._config_text is not None and self._vips:
                    self.restarts += 1
                    metrics.keepalived_restarted(reason)
                    try:
                        self._spawn()
                    except KeepalivedError as exc:
                        self.last_error = str(exc)
                        log.error("%s", exc)

    def _transition(self, transition: Transition) -> None:
        if self._on_transition is not None:
            self._on_transition(transition)

    def _read_held(self) -> dict[str, set[str]]:
        try:
            raw = json.loads(self.paths.held.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): {str(a) for a in v} for k, v in raw.items()}

    def _write_held(self, vips: Mapping[str, set[str]]) -> None:
        tmp = self.paths.held.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: sorted(v) for k, v in vips.items()}))
        tmp.replace(self.paths.held)

    def _cleanup_vips(self, vips: Mapping[str, set[str]]) -> None:
        removed = 0
        for interface, addresses in vips.items():
            try:
                removed += len(remove_addresses(interface, addresses, netns=self.netns))
            except AddressError as exc:
                log.error("could not remove left-over VIPs from %s: %s", interface, exc)
        if removed:
            log.warning("removed %d VIPs left on NICs by keepalived", removed)
            metrics.keepalived_vips_cleaned(removed)


def _death_signal() -> list[str]:
    """Wrap keepalived so the kernel sends it SIGTERM when its parent (the speaker) dies.

    The signal follows the thread that started it; the speaker starts keepalived from threads
    that live as long as the supervisor. ``preexec_fn`` could do the same with prctl, but is not
    safe in a process with threads.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM"] if setpriv else []


def _union(a: Mapping[str, set[str]], b: Mapping[str, set[str]]) -> dict[str, set[str]]:
    out = {k: set(v) for k, v in a.items()}
    for k, v in b.items():
        out.setdefault(k, set()).update(v)
    return out


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _is_ours(pid: int, config: Path) -> bool:
    """Is ``pid`` a keepalived running our config (not a recycled pid)?"""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if not argv or b"keepalived" not in Path(argv[0].decode(errors="replace")).name.encode():
        return False
    return str(config).encode() in argv
