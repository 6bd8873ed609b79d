"""PortForward: a namespace reaches a port of the test process through the forward."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Iterator

import pytest

from openelb.lab.forward import PortForward
from openelb.lab.netns import Testbed

pytestmark = pytest.mark.netns

CLIENT = """
import socket, sys
payload = bytes(range(256)) * 4096  # 1 MiB: more than any socket buffer holds
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(payload)
s.shutdown(socket.SHUT_WR)
got = b""
while chunk := s.recv(65536):
    got += chunk
print("echoed" if got == payload else f"mismatch {len(got)}")
"""


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A TCP echo server on loopback in the test's own namespace."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[:2]
    stop.set()
    listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
    listener.close()
    thread.join(timeout=5)


def test_a_namespace_reaches_the_target_through_the_forward(
    testbed: Testbed, echo_server: tuple[str, int]
) -> None:
    host = testbed.add_host("node1")
    with PortForward(netns=host.netns, target=echo_server, listen_port=0) as forward:
        done = host.run([sys.executable, "-c", CLIENT, str(forward.listen_port)], timeout=30)
        assert done.stdout.strip() == "echoed"
        assert forward.connections_total == 1


def test_a_stopped_forward_refuses_and_a_dead_target_closes_at_once(
    testbed: Testbed,
) -> None:
    host = testbed.add_host("node1")
    unused = socket.create_server(("127.0.0.1", 0))
    dead_target = unused.getsockname()[:2]
    unused.close()
    probe = (
        "import socket,sys\n"
        "try:\n"
        " s=socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=5)\n"
        " print('closed' if s.recv(1) == b'' else 'data')\n"
        "except OSError as e:\n"
        " print('refused')\n"
    )
    with PortForward(netns=host.netns, target=dead_target, listen_port=0) as forward:
        port = str(forward.listen_port)
        assert host.run([sys.executable, "-c", probe, port]).stdout.strip() == "closed"
        forward.stop()
        assert host.run([sys.executable, "-c", probe, port]).stdout.strip() == "refused"
