"""Fixtures for data plane tests: a private bpf filesystem per test session."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def bpffs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A bpffs instance of our own (pins never collide with other runs), unmounted at the end."""
    root = tmp_path_factory.mktemp("bpffs")
    subprocess.run(["mount", "-t", "bpf", "bpf", str(root)], check=True)
    try:
        yield root
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(["umount", "-l", str(root)], check=True)


@pytest.fixture
def pin_instance() -> str:
    return f"t{secrets.token_hex(4)}"
