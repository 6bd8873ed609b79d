"""A throwaway network of namespaces: a switch (Linux bridge) and hosts on veth cables.

Every test that crosses a network, the benchmarks and ``openelb lab`` build their world with this
module, so it has to be boring and safe:

- nothing is created in the root namespace: veth pairs are created inside the switch namespace
  with their peer directly in the host namespace;
- every namespace carries the run's unique prefix (``oelb<hex>-``), so parallel runs and
  leftovers never collide;
- addresses come from private test ranges (10.250.0.0/24 and fd0e:1b::/64 by default);
- teardown kills the run's processes and deletes its namespaces even when a test fails, and a
  detached reaper does the same if the owning process is killed outright (SIGKILL); the janitor
  (:mod:`openelb.lab.janitor`) collects leftovers of runs whose owner and reaper both died.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from openelb.lab.pcap import Frame, read_pcap

PREFIX = "oelb"
"""Every namespace this module creates starts with this; the janitor touches nothing else."""

RUN_DIR = Path(os.environ.get("OPENELB_LAB_RUN_DIR", "/run/openelb-lab"))
"""One record file per live run (owner pid, spawned pids) and its logs and captures."""

SWITCH = "sw"
BRIDGE = "br0"
HOST_IFNAME = "eth0"

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class TestbedError(RuntimeError):
    """A testbed operation failed; the message carries the command and its output."""

    __test__ = False  # not a pytest test class


def run(cmd: Sequence[str], *, timeout: float = 30.0, check: bool = True) -> str:
    """Run a command in the root namespace (iproute2 management only); return stdout."""
    try:
        done = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"timed out after {timeout}s: {' '.join(cmd)}") from exc
    if check and done.returncode != 0:
        raise TestbedError(
            f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr.strip()}"
        )
    return done.stdout


def list_netns() -> list[str]:
    """Names of all network namespaces known to iproute2."""
    out = run(["ip", "-json", "netns", "list"], check=False).strip()
    if not out:
        return []
    return [str(entry["name"]) for entry in json.loads(out)]


def netns_pids(netns: str) -> list[int]:
    """Pids of processes whose network namespace is ``netns``."""
    out = run(["ip", "netns", "pids", netns], check=False)
    return [int(tok) for tok in out.split() if tok.isdigit()]


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (guards against pid reuse), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may contain spaces, so split after its ')'.
    return int(stat.rsplit(")", 1)[1].split()[19])


@contextlib.contextmanager
def in_netns(netns: str) -> Iterator[None]:
    """Move the *calling thread* into ``netns`` for the block, then back.

    Sockets opened inside stay in that namespace. Use it from a thread that does nothing else
    meanwhile; other threads of the process are not affected.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if _libc.setns(target, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise TestbedError(f"setns({netns}) failed: {os.strerror(err)}")
        try:
            yield
        finally:
            if _libc.setns(own, _CLONE_NEWNET) != 0:  # pragma: no cover - would be a kernel bug
                err = ctypes.get_errno()
                raise TestbedError(f"setns back failed: {os.strerror(err)}")
    finally:
        os.close(target)
        os.close(own)


@dataclass
class Process:
    """A long-running process started by the testbed (in a host or in the root namespace)."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        self.signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.popen.returncode

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5.0)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_for_output(self, text: str, *, timeout: float) -> None:
        """Until ``text`` shows in the log (a readiness line); TestbedError if the process exits
        first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if not self.alive():
                raise TestbedError(
                    f"{self.name} exited before printing {text!r}:\n{self.log()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise TestbedError(
                    f"{self.name} did not print {text!r} within {timeout:.0f} s:\n"
                    + self.log()[-3000:]
                )
            time.sleep(0.02)


@dataclass
class Capture:
    """A running tcpdump on a host; ``stop()`` returns the parsed frames."""

    process: Process
    pcap_path: Path
    frames: list[Frame] = field(default_factory=list)

    def stop(self) -> list[Frame]:
        # SIGINT makes tcpdump flush and close the file properly.
        self.process.signal(signal.SIGINT)
        try:
            self.process.popen.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.frames = read_pcap(self.pcap_path) if self.pcap_path.exists() else []
        return self.frames


@dataclass
class Host:
    """One host namespace with a single NIC (``eth0``) plugged into the switch."""

    testbed: Testbed
    name: str
    netns: str
    port: str
    """The switch-side end of this host's cable (in the switch namespace)."""
    mac: str
    ipv4: ipaddress.IPv4Interface
    ipv6: ipaddress.IPv6Interface
    ifname: str = HOST_IFNAME

    def run(
        self, cmd: Sequence[str] | str, *, timeout: float = 30.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside this host and wait for it (a string goes through ``sh -c``)."""
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full = ["ip", "netns", "exec", self.netns, *argv]
        try:
            done = subprocess.run(
                full, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(f"{self.name}: timed out after {timeout}s: {argv}") from exc
        if check and done.returncode != 0:
            raise TestbedError(
                f"{self.name}: command failed ({done.returncode}): {argv}\n"
                f"{done.stdout.strip()}\n{done.stderr.strip()}"
            )
        return done

    def spawn(
        self, cmd: Sequence[str], *, name: str = "", env: dict[str, str] | None = None
    ) -> Process:
        """Start a long-running process inside this host; it is killed at teardown."""
        return self.testbed.spawn(
            cmd, netns=self.netns, name=name or f"{self.name}-{Path(cmd[0]).name}", env=env
        )

    def capture(self, bpf_filter: str = "", *, iface: str = "", snaplen: int = 512) -> Capture:
        """Start tcpdump on this host's NIC; returns once tcpdump is listening."""
        return self.testbed.capture(self, bpf_filter, iface=iface or self.ifname, snaplen=snaplen)

    def link_down(self) -> None:
        """Pull the cable: take the switch port down (the host's NIC loses carrier)."""
        run(["ip", "-n", self.testbed.switch_netns, "link", "set", self.port, "down"])

    def link_up(self) -> None:
        run(["ip", "-n", self.testbed.switch_netns, "link", "set", self.port, "up"])

    def neighbour(self, address: str) -> tuple[str, str] | None:
        """This host's neighbour entry for ``address``: (lladdr or "", state), or None."""
        out = self.run(["ip", "-json", "neigh", "show", "to", address, "dev", self.ifname]).stdout
        entries = json.loads(out or "[]")
        if not entries:
            return None
        entry = entries[0]
        state = entry.get("state", [""])
        return str(entry.get("lladdr", "")), str(state[0] if state else "")


class Testbed:
    """A switch namespace with a bridge and any number of hosts; a context manager.

    >>> with Testbed() as tb:                       # doctest: +SKIP
    ...     a, b = tb.add_host("a"), tb.add_host("b")
    ...     a.run(["ping", "-c1", str(b.ipv4.ip)])
    """

    __test__ = False

    def __init__(
        self,
        *,
        subnet4: str = "10.250.0.0/24",
        subnet6: str = "fd0e:1b::/64",
        multicast_snooping: bool = False,
        reaper: bool = True,
    ) -> None:
        self.run_id = f"{PREFIX}{secrets.token_hex(3)}"
        self.subnet4 = ipaddress.IPv4Network(subnet4)
        self.subnet6 = ipaddress.IPv6Network(subnet6)
        self.dir = RUN_DIR / self.run_id
        self.hosts: dict[str, Host] = {}
        self.processes: list[Process] = []
        self._lock = threading.Lock()
        self._closed = False
        self._reaper: subprocess.Popen[bytes] | None = None
        self.switch_netns = f"{self.run_id}-{SWITCH}"
        self.dir.mkdir(parents=True, exist_ok=True)
        # The record exists before any namespace does: a namespace without a record is an orphan.
        self._write_record()
        try:
            if reaper:
                self._start_reaper()
            self._create_switch(multicast_snooping)
        except BaseException:
            self.close()
            raise

    # --- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Testbed:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def namespaces(self) -> list[str]:
        """Namespaces of this run that currently exist."""
        return [ns for ns in list_netns() if ns.startswith(f"{self.run_id}-")]

    def close(self) -> None:
        """Kill every process of the run and delete its namespaces. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for proc in reversed(self.processes):
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + 3.0
        for proc in reversed(self.processes):
            try:
                proc.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        from openelb.lab.janitor import remove_run

        remove_run(self.run_id, self.dir)
        if self._reaper is not None:
            with contextlib.suppress(ProcessLookupError):
                self._reaper.kill()
            self._reaper.wait()
            for pipe in (self._reaper.stdin, self._reaper.stdout):
                if pipe is not None:
                    pipe.close()

    # --- building --------------------------------------------------------------------------------

    def _create_switch(self, multicast_snooping: bool) -> None:
        ns = self.switch_netns
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        run(
            [
                "ip",
                "-n",
                ns,
                "link",
                "add",
                BRIDGE,
                "type",
                "bridge",
                "forward_delay",
                "0",
                "mcast_snooping",
                "1" if multicast_snooping else "0",
            ]
        )
        run(["ip", "-n", ns, "link", "set", BRIDGE, "up"])

    def add_host(self, name: str) -> Host:
        """Create a host namespace with ``eth0`` on the switch, IPv4 and IPv6 addresses, lo up."""
        if name in self.hosts:
            raise TestbedError(f"host {name!r} already exists")
        if not name.isalnum() or len(name) > 10:
            raise TestbedError(f"host name must be alphanumeric, at most 10 chars: {name!r}")
        index = len(self.hosts) + 1
        netns = f"{self.run_id}-{name}"
        port = f"p-{name}"
        mac = f"02:0e:1b:00:{index // 256:02x}:{index % 256:02x}"
        ipv4 = ipaddress.IPv4Interface(f"{self.subnet4[10 + index]}/{self.subnet4.prefixlen}")
        ipv6 = ipaddress.IPv6Interface(f"{self.subnet6[0x10 + index]}/{self.subnet6.prefixlen}")
        sw = self.switch_netns
        run(["ip", "netns", "add", netns])
        run(
            [
                "ip",
                "-n",
                sw,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                HOST_IFNAME,
                "netns",
                netns,
            ]
        )
        run(["ip", "-n", sw, "link", "set", port, "master", BRIDGE, "up"])
        run(["ip", "-n", netns, "link", "set", "lo", "up"])
        run(["ip", "-n", netns, "link", "set", HOST_IFNAME, "address", mac, "up"])
        run(["ip", "-n", netns, "addr", "add", str(ipv4), "dev", HOST_IFNAME])
        run(["ip", "-n", netns, "addr", "add", str(ipv6), "dev", HOST_IFNAME, "nodad"])
        host = Host(self, name, netns, port, mac, ipv4, ipv6)
        self.hosts[name] = host
        return host

    def add_hosts(self, *names: str) -> list[Host]:
        return [self.add_host(name) for name in names]

    # --- processes -------------------------------------------------------------------------------

    def spawn(
        self,
        cmd: Sequence[str],
        *,
        netns: str | None = None,
        name: str = "",
        env: dict[str, str] | None = None,
    ) -> Process:
        """Start a process (inside ``netns`` if given); recorded so teardown and reaper kill it."""
        if self._closed:
            raise TestbedError("testbed is closed")
        label = name or Path(cmd[0]).name
        log_path = self.dir / f"{label}-{len(self.processes)}.log"
        argv = ["ip", "netns", "exec", netns, *cmd] if netns else list(cmd)
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
            )
        proc = Process(label, popen, log_path)
        with self._lock:
            self.processes.append(proc)
        self._write_record()
        return proc

    def capture(
        self, host: Host, bpf_filter: str = "", *, iface: str = HOST_IFNAME, snaplen: int = 512
    ) -> Capture:
        """Start tcpdump inside ``host`` writing a pcap; wait until it listens."""
        pcap = self.dir / f"{host.name}-{iface}-{len(self.processes)}.pcap"
        cmd = [
            "tcpdump",
            "-i",
            iface,
            "-n",
            "-U",
            "--immediate-mode",
            "-s",
            str(snaplen),
            "-w",
            str(pcap),
            "--time-stamp-precision=nano",
        ]
        if bpf_filter:
            cmd.append(bpf_filter)
        proc = self.spawn(cmd, netns=host.netns, name=f"{host.name}-tcpdump")
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if "listening on" in proc.log():
                return Capture(proc, pcap)
            if not proc.alive():
                raise TestbedError(f"tcpdump exited on {host.name}: {proc.log().strip()}")
            time.sleep(0.01)
        proc.kill()
        raise TestbedError(f"tcpdump did not start listening on {host.name} within 10s")

    # --- crash safety ----------------------------------------------------------------------------

    def _write_record(self) -> None:
        record = {
            "run_id": self.run_id,
            "owner_pid": os.getpid(),
            "owner_start": process_start_time(os.getpid()),
            "pids": [[p.pid, process_start_time(p.pid)] for p in self.processes],
        }
        tmp = self.dir / "record.json.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.dir / "record.json")

    def _start_reaper(self) -> None:
        """A detached process that cleans this run up if the owner dies without closing it."""
        self._reaper = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "openelb.lab.janitor",
                "--reap",
                self.run_id,
                "--owner",
                str(os.getpid()),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Wait for "ready" so a SIGKILL right after construction is still covered.
        assert self._reaper.stdout is not None
        ready, _, _ = select.select([self._reaper.stdout], [], [], 10.0)
        if not ready or not self._reaper.stdout.readline().startswith(b"ready"):
            raise TestbedError("testbed reaper did not start")
