"""A loopback TCP forwarder a test can cut, to partition one client from the apiserver.

Tests and benchmarks of the Kubernetes layer (leader election) need to cut exactly one client
off while the others keep talking to the same server; a forwarder per client does that without
namespaces or root.

Modes when cut: ``refuse`` closes every connection at once (like a refused/reset peer) and
``blackhole`` accepts and holds connections without forwarding a byte (requests time out).
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    """Forward ``127.0.0.1:<port>`` to the upstream port until cut."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.mode = "forward"
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut(self, mode: str = "refuse") -> None:
        """Partition: ``refuse`` (connections close at once) or ``blackhole`` (they hang)."""
        if mode not in ("refuse", "blackhole"):
            raise ValueError(f"unknown cut mode {mode!r}")
        with self._lock:
            self.mode = mode
            conns, self._conns = self._conns, []
        for conn in conns:
            _close(conn)

    def heal(self) -> None:
        """Forward again (hung connections are reset so their clients reconnect)."""
        with self._lock:
            self.mode = "forward"
            conns, self._conns = self._conns, []
        for conn in conns:  # blackholed connections: let their clients see a reset now
            _close(conn)

    def close(self) -> None:
        self._closed = True
        _close(self.listener)
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                mode = self.mode
                if mode != "refuse":
                    self._conns.append(client)
            if mode == "refuse":
                _close(client)
            elif mode == "forward":
                try:
                    upstream = socket.create_connection(self.upstream, timeout=2)
                except OSError:
                    _close(client)
                    continue
                upstream.settimeout(None)
                with self._lock:
                    self._conns.append(upstream)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data or self.mode != "forward":
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src)
            _close(dst)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
