"""Client traffic for failover measurements: a UDP echo server, a fine-grained stream, analysis.

Failover is judged by what a client sees, not by what the load balancer logs: the gap in its
traffic. ``ping`` cannot measure that here (``ping -i 0.01`` really sends every ~16 ms on these
machines), so every failover benchmark, the lab and the tests use this module instead:

- an echo server (:class:`EchoServer`, :func:`start_echo_server`, or
  ``python -m openelb.lab.traffic serve --port N``) that answers each datagram from the address it
  was sent to (so a VIP answers as the VIP, not as the node's own address) and appends its node
  name, so the client knows *which* node answered;
- a client stream (:class:`UdpStream`, or ``python -m openelb.lab.traffic stream ...``) sending
  sequence-numbered datagrams every 1-2 ms, bounded in count and time, recording kernel receive
  timestamps; events (``mark("cut")``, or SIGUSR1 for the command) note when something was done;
- :func:`analyse` turning a :class:`StreamResult` into a :class:`GapReport`: the largest gap
  between replies around the event, what was lost, who answered before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from openelb.lab.gaps import GapReport, Probe, StreamResult, TrafficError, analyse

if TYPE_CHECKING:
    from openelb.lab.netns import Host

__all__ = [
    "DEFAULT_PORT",
    "EchoServer",
    "GapReport",
    "Probe",
    "StreamResult",
    "TrafficError",
    "UdpStream",
    "analyse",
    "decode_reply",
    "encode_reply",
    "encode_request",
    "main",
    "parse_target",
    "start_echo_server",
]

DEFAULT_PORT = 7007
"""Servers live in namespaces of their own, so a fixed well-known port is safe there."""

MAGIC = b"OELB"
_HEADER = struct.Struct("!4sQQ")
"""magic, sequence number, client send time (ns, CLOCK_REALTIME): echoed back unchanged."""
MAX_NAME = 64
"""Longest responder name carried in a reply (bytes of UTF-8)."""

MAX_DATAGRAMS = 1_000_000
"""Upper bound on one stream, whatever the duration and interval asked for."""
MAX_DURATION = 600.0
"""Upper bound on one stream's sending time, seconds."""

# Linux values; Python's socket module lacks these names.
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_IN_PKTINFO = struct.Struct("=i4s4s")
"""struct in_pktinfo: ifindex, spec_dst, addr."""
_IN6_PKTINFO = struct.Struct("=16si")
"""struct in6_pktinfo: addr, ifindex."""
_TIMESPEC = struct.Struct("=qq")
_CMSG_SPACE = socket.CMSG_SPACE(_IN6_PKTINFO.size) + socket.CMSG_SPACE(_TIMESPEC.size)


# --- wire format ---------------------------------------------------------------------------------


def encode_request(seq: int, sent_ns: int) -> bytes:
    """A client datagram: magic, sequence number, send time."""
    return _HEADER.pack(MAGIC, seq, sent_ns)


def encode_reply(request: bytes, responder: bytes) -> bytes | None:
    """The server's answer to ``request``: its header followed by the responder name.

    Returns None for anything that is not one of our requests (never echo foreign traffic).
    """
    if len(request) < _HEADER.size or request[:4] != MAGIC:
        return None
    return request[: _HEADER.size] + responder[:MAX_NAME]


def decode_reply(data: bytes) -> tuple[int, int, str] | None:
    """(seq, client send time ns, responder name), or None if ``data`` is not a reply."""
    if len(data) < _HEADER.size:
        return None
    magic, seq, sent_ns = _HEADER.unpack_from(data)
    if magic != MAGIC:
        return None
    return seq, sent_ns, data[_HEADER.size :].decode("utf-8", "replace")


# --- echo server ---------------------------------------------------------------------------------


def _open_server_sockets(bind: str, port: int) -> list[socket.socket]:
    """One socket per family for a wildcard bind (or one for a given address), with PKTINFO."""
    if bind in ("", "*"):
        addresses: list[str] = ["0.0.0.0", "::"]
    else:
        addresses = [bind]
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_DGRAM)
            sockets.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_PKTINFO, 1)
            # Several servers of one process may bind the same port in different namespaces;
            # within one namespace a second bind must fail loudly, so no SO_REUSEPORT.
            sock.bind((address, port))
            port = sock.getsockname()[1]  # port 0: both families share the chosen port
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise TrafficError(f"echo server cannot bind {bind or '*'} port {port}: {exc}") from exc
    return sockets


def _reply_ancillary(ancdata: list[tuple[int, int, bytes]]) -> list[tuple[int, int, bytes]]:
    """Ancillary data making the reply leave from the address the request was sent to."""
    for level, kind, data in ancdata:
        if level == socket.IPPROTO_IP and kind == _IP_PKTINFO and len(data) >= _IN_PKTINFO.size:
            _ifindex, _spec, dst = _IN_PKTINFO.unpack_from(data)
            return [(socket.IPPROTO_IP, _IP_PKTINFO, _IN_PKTINFO.pack(0, dst, bytes(4)))]
        if (
            level == socket.IPPROTO_IPV6
            and kind == socket.IPV6_PKTINFO
            and len(data) >= _IN6_PKTINFO.size
        ):
            dst6, ifindex = _IN6_PKTINFO.unpack_from(data)
            # Link-local destinations need their interface; global ones leave it to routing.
            keep = ifindex if dst6[:2] == b"\xfe\x80" else 0
            return [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, _IN6_PKTINFO.pack(dst6, keep))]
    return []


class EchoServer:
    """Answers stream datagrams with their header and this server's name, until stopped.

    The sockets are opened in the namespace given (or the caller's) when the server is built; a
    daemon thread answers. ``served`` counts the replies sent.
    """

    def __init__(
        self,
        *,
        name: str,
        port: int = DEFAULT_PORT,
        bind: str = "",
        netns: str | None = None,
    ) -> None:
        self.name = name
        self._name_bytes = name.encode()[:MAX_NAME]
        if netns is None:
            self._sockets = _open_server_sockets(bind, port)
        else:
            from openelb.lab.netns import in_netns

            with in_netns(netns):
                self._sockets = _open_server_sockets(bind, port)
        self.port: int = self._sockets[0].getsockname()[1]
        self.served = 0
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self.serve, name=f"echo-{name}", daemon=True)

    def start(self) -> EchoServer:
        self._thread.start()
        return self

    def serve(self) -> None:
        """Answer until :meth:`stop` (runs in the calling thread)."""
        by_fd = {sock.fileno(): sock for sock in self._sockets}
        readable = [*by_fd, self._stop_r]
        while True:
            ready, _, _ = select.select(readable, [], [])
            if self._stop_r in ready:
                return
            for fd in ready:
                self.answer_one(by_fd[fd])

    def answer_one(self, sock: socket.socket) -> None:
        """Read one datagram from ``sock`` and answer it if it is a stream request."""
        try:
            data, ancdata, _flags, peer = sock.recvmsg(256, _CMSG_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        reply = encode_reply(data, self._name_bytes)
        if reply is None:
            return
        with contextlib.suppress(OSError):  # peer gone, route lost mid-failover: not our problem
            sock.sendmsg([reply], _reply_ancillary(ancdata), 0, peer)
            self.served += 1

    def stop(self) -> None:
        """Stop answering and close the sockets; safe to call twice."""
        if self._stop_w < 0:
            return
        os.write(self._stop_w, b"x")
        if self._thread.is_alive():
            self._thread.join(5.0)
        for fd in (self._stop_r, self._stop_w):
            os.close(fd)
        self._stop_r = self._stop_w = -1
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> EchoServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_echo_server(
    host: Host | None = None, port: int = DEFAULT_PORT, *, name: str = "", bind: str = ""
) -> EchoServer:
    """Start an echo server inside ``host``'s namespace (or the caller's, for None).

    It answers on every address of the host, including VIPs added later, and names itself after
    the host unless ``name`` is given. Stop it with ``.stop()``; the testbed's teardown does not
    know about it.
    """
    label = name or (host.name if host is not None else socket.gethostname())
    server = EchoServer(
        name=label, port=port, bind=bind, netns=host.netns if host is not None else None
    )
    return server.start()


# --- client stream -------------------------------------------------------------------------------


def parse_target(text: str) -> tuple[str, int]:
    """``"10.0.0.1:7007"`` or ``"[fd00::1]:7007"`` to (address, port); TrafficError if bad."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise TrafficError(f"target {text!r} is not IP:PORT (IPv6 as [addr]:port)")
    host = host.removeprefix("[").removesuffix("]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise TrafficError(f"target {text!r}: {host!r} is not an IP address") from None
    port = int(port_text)
    if not 0 < port < 65536:
        raise TrafficError(f"target {text!r}: port out of range")
    return str(address), port


class UdpStream:
    """Sends numbered datagrams to ``target`` every ``interval`` and records every reply.

    Bounded twice: at most ``count`` datagrams (default: duration / interval) and at most
    ``duration`` seconds of sending (both capped by :data:`MAX_DATAGRAMS`/:data:`MAX_DURATION`).
    After the last send it waits ``drain`` seconds for late replies. Run it with :meth:`run`
    (blocking) or :meth:`start` + :meth:`wait`; :meth:`stop` ends it early.
    """

    def __init__(
        self,
        target: tuple[str, int],
        *,
        interval: float = 0.001,
        duration: float = 5.0,
        count: int | None = None,
        drain: float = 0.5,
        netns: str | None = None,
    ) -> None:
        if not 0.0001 <= interval <= 1.0:
            raise TrafficError(f"interval {interval}s must be within 0.1 ms .. 1 s")
        if not 0 < duration <= MAX_DURATION:
            raise TrafficError(f"duration {duration}s must be within 0 .. {MAX_DURATION} s")
        limit = min(MAX_DATAGRAMS, int(duration / interval) + 1)
        self.count = limit if count is None else min(count, limit)
        if self.count < 1:
            raise TrafficError("a stream sends at least one datagram")
        self.address, self.port = target
        self.interval = interval
        self.duration = duration
        self.drain = drain
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        if netns is None:
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
        else:
            from openelb.lab.netns import in_netns

            with in_netns(netns):
                self._sock = socket.socket(family, socket.SOCK_DGRAM)
        # Kernel receive timestamps: reply times do not depend on when Python gets to run.
        self._sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self._stop = threading.Event()
        self._t0_ns = 0
        self._probes: list[Probe] = []
        self._events: dict[str, float] = {}
        self._duplicates = 0
        self._sent = 0
        self._send_done = threading.Event()
        self._threads: list[threading.Thread] = []

    # --- running ---

    def start(self) -> UdpStream:
        """Start sending and receiving in background threads."""
        self._t0_ns = time.time_ns()
        self._threads = [
            threading.Thread(target=self._receive_loop, name="stream-rx", daemon=True),
            threading.Thread(target=self._send_loop, name="stream-tx", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def wait(self, timeout: float | None = None) -> StreamResult:
        """Wait until sending and draining are done (or ``timeout``); return what was seen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        self._stop.set()
        for thread in self._threads:
            thread.join(2.0)
        self._sock.close()
        return self.result()

    def run(self) -> StreamResult:
        return self.start().wait()

    def stop(self) -> None:
        """End sending now (replies already in flight are still drained)."""
        self._stop.set()

    def mark(self, label: str) -> float:
        """Note that ``label`` happened now; returns seconds since the stream started."""
        at = (time.time_ns() - self._t0_ns) / 1e9
        self._events[label] = at
        return at

    def elapsed(self) -> float:
        return (time.time_ns() - self._t0_ns) / 1e9

    def replies_seen(self) -> int:
        """Replies received so far (cheap; for waiting until traffic flows)."""
        return sum(1 for p in self._probes[: self._sent] if p.received is not None)

    def last_responder(self) -> str:
        for probe in reversed(self._probes[: self._sent]):
            if probe.received is not None:
                return probe.responder
        return ""

    def result(self) -> StreamResult:
        return StreamResult(
            target=f"{self.address}:{self.port}",
            interval=self.interval,
            started_at=self._t0_ns / 1e9,
            probes=self._probes[: self._sent],
            events=dict(self._events),
            duplicates=self._duplicates,
        )

    # --- threads ---

    def _send_loop(self) -> None:
        destination = (self.address, self.port)
        interval_ns = int(self.interval * 1e9)
        end_ns = self._t0_ns + int(self.duration * 1e9)
        try:
            for seq in range(self.count):
                if self._stop.is_set():
                    break
                now = time.time_ns()
                if now > end_ns:
                    break
                # Appended before sending: the reply may arrive before sendto returns.
                self._probes.append(Probe(seq=seq, sent=(now - self._t0_ns) / 1e9))
                self._sent = seq + 1
                with contextlib.suppress(OSError):  # no route during failover: a lost probe
                    self._sock.sendto(encode_request(seq, now), destination)
                # An absolute schedule: a late wake-up does not shift every later datagram.
                due = self._t0_ns + (seq + 1) * interval_ns
                delay = (due - time.time_ns()) / 1e9
                if delay > 0:
                    self._stop.wait(delay)
        finally:
            self._send_done.set()

    def _receive_loop(self) -> None:
        drain_deadline: float | None = None
        while True:
            if self._send_done.is_set() and drain_deadline is None:
                drain_deadline = time.monotonic() + self.drain
            if drain_deadline is not None and time.monotonic() >= drain_deadline:
                return
            ready, _, _ = select.select([self._sock], [], [], 0.05)
            if not ready:
                continue
            try:
                data, ancdata, _flags, _peer = self._sock.recvmsg(256, _CMSG_SPACE)
            except OSError:
                continue
            received_ns = _kernel_timestamp(ancdata) or time.time_ns()
            decoded = decode_reply(data)
            if decoded is None:
                continue
            seq, _sent_ns, responder = decoded
            if seq >= self._sent:
                continue  # not from this stream (or a forged number)
            probe = self._probes[seq]
            if probe.received is not None:
                self._duplicates += 1
                continue
            probe.received = (received_ns - self._t0_ns) / 1e9
            probe.responder = responder


def _kernel_timestamp(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return int(sec * 1_000_000_000 + nsec)
    return None


# --- command line --------------------------------------------------------------------------------


@contextlib.contextmanager
def _signal_marks(stream: UdpStream) -> Iterator[None]:
    """SIGUSR1 marks an event (``usr1``, ``usr1-2``...) so a script can time its injection."""
    count = 0

    def on_usr1(_signum: int, _frame: object) -> None:
        nonlocal count
        count += 1
        stream.mark("usr1" if count == 1 else f"usr1-{count}")

    previous = signal.signal(signal.SIGUSR1, on_usr1)
    try:
        yield
    finally:
        signal.signal(signal.SIGUSR1, previous)


def _cmd_serve(args: argparse.Namespace) -> int:
    server = EchoServer(name=args.name or socket.gethostname(), port=args.port, bind=args.bind)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"listening on port {server.port} as {server.name}", flush=True)
    stop.wait()
    server.stop()
    return 0


def _cmd_stream(args: argparse.Namespace) -> int:
    stream = UdpStream(
        parse_target(args.target),
        interval=args.interval_ms / 1000.0,
        duration=args.duration,
        count=args.count,
        drain=args.drain,
    )
    with _signal_marks(stream):
        print(f"streaming to {args.target} (pid {os.getpid()}, SIGUSR1 marks an event)", flush=True)
        result = stream.run()
    if args.out:
        Path(args.out).write_text(result.to_json())
    print(analyse(result).summary(), flush=True)
    return 0


def _cmd_analyse(args: argparse.Namespace) -> int:
    result = StreamResult.from_json(Path(args.file).read_text())
    report = analyse(result, event=args.event)
    if args.json:
        print(json.dumps(asdict(report)))
    else:
        print(report.summary())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openelb.lab.traffic", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="answer stream datagrams (run inside a node namespace)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve.add_argument("--bind", default="", help="address to bind (default: every address)")
    serve.add_argument("--name", default="", help="name carried in replies (default: hostname)")
    serve.set_defaults(func=_cmd_serve)
    stream = sub.add_parser("stream", help="send a numbered stream and record the replies")
    stream.add_argument("--target", required=True, help="IP:PORT or [IPv6]:PORT")
    stream.add_argument("--interval-ms", type=float, default=1.0)
    stream.add_argument("--duration", type=float, default=5.0, help="seconds of sending")
    stream.add_argument("--count", type=int, default=None, help="at most this many datagrams")
    stream.add_argument("--drain", type=float, default=0.5, help="seconds to wait for replies")
    stream.add_argument("--out", default="", help="write the raw result as JSON here")
    stream.set_defaults(func=_cmd_stream)
    report = sub.add_parser("analyse", help="report the gap in a stream's JSON result")
    report.add_argument("file")
    report.add_argument("--event", default=None)
    report.add_argument("--json", action="store_true")
    report.set_defaults(func=_cmd_analyse)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except TrafficError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
