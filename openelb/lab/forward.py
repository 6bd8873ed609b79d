"""A TCP port forward from inside a network namespace to a port in this process's namespace.

The lab and the end-to-end tests run the embedded apiserver in-process, on loopback in the root
namespace, so a test can inject faults into it and read its state directly. The manager and
speakers run in node namespaces and cannot reach the root namespace's loopback (the testbed never
touches the root namespace's interfaces). This forward bridges that: its listening socket is
opened *inside* the namespace (a socket keeps the namespace it was created in), its upstream
connections are opened from here. Each node namespace gets ``127.0.0.1:6443`` as "the apiserver",
the way a kubelet's node reaches the control plane over a management path that is not the data
LAN, so cutting a node's LAN link does not also cut it off from the apiserver (that is a separate,
explicit fault: :meth:`PortForward.stop`).

One selector thread serves every connection; a closed side closes the other, so an apiserver
restart or a dropped watch looks to the client exactly as it would without the forward.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from dataclasses import dataclass, field

from openelb.lab.netns import in_netns

_CHUNK = 65536


@dataclass
class _Pair:
    downstream: socket.socket
    upstream: socket.socket
    pending: dict[socket.socket, bytes] = field(default_factory=dict)
    """Bytes read from one side and not yet written, keyed by the side they go to."""
    ended: set[socket.socket] = field(default_factory=set)
    """Sides that sent EOF: their peer gets a half-close once what is pending for it is out."""

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.upstream if sock is self.downstream else self.downstream


class PortForward:
    """Forward ``listen_host:listen_port`` inside ``netns`` to ``target`` in our own namespace."""

    def __init__(
        self,
        *,
        netns: str,
        target: tuple[str, int],
        listen_host: str = "127.0.0.1",
        listen_port: int = 6443,
    ) -> None:
        self.netns = netns
        self.target = target
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.connections_total = 0
        self._selector = selectors.DefaultSelector()
        self._pairs: dict[socket.socket, _Pair] = {}
        self._listener: socket.socket | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> PortForward:
        if self._thread is not None:
            return self
        family = socket.AF_INET6 if ":" in self.listen_host else socket.AF_INET
        with in_netns(self.netns):
            listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.listen_host, self.listen_port))
        listener.listen(128)
        listener.setblocking(False)
        self.listen_port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._selector.register(listener, selectors.EVENT_READ)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._thread = threading.Thread(
            target=self._loop, name=f"forward:{self.netns}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening port and every forwarded connection (the namespace is cut off)."""
        if self._thread is None:
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout=5)
        self._thread = None

    def close(self) -> None:
        self.stop()
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()

    @property
    def open_connections(self) -> int:
        return len({id(p) for p in self._pairs.values()})

    def __enter__(self) -> PortForward:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the selector thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                for key, events in self._selector.select(timeout=0.5):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    if sock is self._wake_r:
                        with contextlib.suppress(OSError):
                            self._wake_r.recv(64)
                    elif sock is self._listener:
                        self._accept()
                    elif sock in self._pairs:
                        self._service(sock, events)
        finally:
            for sock in list(self._pairs):
                self._close_pair(sock)
            if self._listener is not None:
                self._selector.unregister(self._listener)
                self._listener.close()
                self._listener = None
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(self._wake_r)

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            downstream, _ = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2.0)
        except OSError:
            # Upstream down (apiserver stopped): refuse as it would, by closing at once.
            downstream.close()
            return
        for sock in (downstream, upstream):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = _Pair(downstream, upstream)
        self._pairs[downstream] = self._pairs[upstream] = pair
        self._selector.register(downstream, selectors.EVENT_READ)
        self._selector.register(upstream, selectors.EVENT_READ)
        self.connections_total += 1

    def _service(self, sock: socket.socket, events: int) -> None:
        pair = self._pairs[sock]
        if events & selectors.EVENT_WRITE:
            self._flush(pair, sock)
            if sock not in self._pairs:
                return
        if events & selectors.EVENT_READ and pair.peer(sock) not in pair.pending:
            try:
                data = sock.recv(_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if data:
                pair.pending[pair.peer(sock)] = data
            else:
                pair.ended.add(sock)
                if len(pair.ended) == 2:
                    self._close_pair(sock)
                    return
            self._flush(pair, pair.peer(sock))

    def _flush(self, pair: _Pair, sock: socket.socket) -> None:
        """Write what is pending for ``sock``; while it is backed up, its peer is not read."""
        data = pair.pending.pop(sock, b"")
        try:
            sent = sock.send(data) if data else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._close_pair(sock)
            return
        if sent < len(data):
            pair.pending[sock] = data[sent:]
        elif pair.peer(sock) in pair.ended:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)  # pass the half-close on, data first
        self._update(pair, sock)
        self._update(pair, pair.peer(sock))

    def _update(self, pair: _Pair, sock: socket.socket) -> None:
        """Select on what ``sock`` can do now: read unless its peer is backed up, write if owed."""
        backed_up = pair.peer(sock) in pair.pending
        events = 0 if backed_up or sock in pair.ended else selectors.EVENT_READ
        if sock in pair.pending:
            events |= selectors.EVENT_WRITE
        registered = sock in self._selector.get_map()
        if events and registered:
            self._selector.modify(sock, events)
        elif events:
            self._selector.register(sock, events)
        elif registered:
            self._selector.unregister(sock)

    def _close_pair(self, sock: socket.socket) -> None:
        pair = self._pairs.get(sock)
        if pair is None:
            return
        for side in (pair.downstream, pair.upstream):
            self._pairs.pop(side, None)
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(side)
            with contextlib.suppress(OSError):
                side.shutdown(socket.SHUT_RDWR)
            side.close()
