"""Real services for tests: a private redis-server or etcd, started on free loopback ports.

Each server runs as a child process of the test run, with its data in a temporary directory,
listening only on 127.0.0.1, and is stopped (and its directory removed) when the ``with``
block or the fixture ends. Nothing needs to be running beforehand.

When the binary is missing the test is skipped, except under CI (``CI=true``), where it
fails: CI installs the Debian packages ``redis-server`` and ``etcd-server``, so a missing
binary there is a broken CI, not a reason to skip.

Use as context managers::

    from services import etcd_server, redis_server

    with etcd_server() as etcd:
        registry = EtcdRegistry(etcd.endpoint)

    with redis_server() as redis:
        client = redis_lib.Redis.from_url(redis.url)

or as pytest fixtures (one server per test module): import ``etcd_service`` /
``redis_service`` into a conftest.py, or define a module fixture around the context manager.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "EtcdServer",
    "RedisServer",
    "etcd_server",
    "etcd_service",
    "find_binary",
    "free_port",
    "redis_server",
    "redis_service",
]

# How long a server may take to accept requests on a loaded machine.
_START_TIMEOUT = 30.0
# How long a server may take to exit after SIGTERM before it is killed.
_STOP_TIMEOUT = 10.0
# Debian installs the binaries here; PATH is searched first.
_SEARCH_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin")


@dataclass(frozen=True)
class RedisServer:
    """A running redis-server: ``url`` is ``redis://127.0.0.1:<port>/0``."""

    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"


@dataclass(frozen=True)
class EtcdServer:
    """A running single-member etcd: ``endpoint`` is its client URL ``http://127.0.0.1:<port>``."""

    host: str
    port: int
    pid: int
    data_dir: str

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"


def find_binary(name: str) -> str:
    """The path of ``name``; skips the test if it is missing (fails it when CI=true)."""
    path = shutil.which(name)
    if path is None:
        for directory in _SEARCH_DIRS:
            candidate = os.path.join(directory, name)
            if os.access(candidate, os.X_OK):
                path = candidate
                break
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install {_PACKAGES.get(name, name)})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; CI must install it", pytrace=False)
        pytest.skip(message)
    return path


_PACKAGES = {"redis-server": "redis-server", "etcd": "etcd-server"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start a private redis-server on a free loopback port; stop it on exit."""
    binary = find_binary("redis-server")
    with tempfile.TemporaryDirectory(prefix="goconc-redis-", dir=_scratch()) as tmp:
        for attempt in range(3):
            port = free_port()
            argv = [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", tmp,
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--protected-mode", "yes",
                "--loglevel", "warning",
                "--logfile", os.path.join(tmp, "redis.log"),
            ]  # fmt: skip
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                if _wait_ready(proc, functools.partial(_redis_ping, port)):
                    yield RedisServer("127.0.0.1", port, proc.pid)
                    return
            finally:
                _stop(proc)
            if attempt == 2:
                raise RuntimeError(
                    f"redis-server did not start on 127.0.0.1:{port}:\n"
                    + _tail(Path(tmp, "redis.log"))
                )


@contextlib.contextmanager
def etcd_server() -> Iterator[EtcdServer]:
    """Start a private single-member etcd on free loopback ports; stop it on exit."""
    binary = find_binary("etcd")
    with tempfile.TemporaryDirectory(prefix="goconc-etcd-", dir=_scratch()) as tmp:
        for attempt in range(3):
            client, peer = free_port(), free_port()
            data_dir = os.path.join(tmp, f"data{attempt}")
            client_url = f"http://127.0.0.1:{client}"
            peer_url = f"http://127.0.0.1:{peer}"
            argv = [
                binary,
                "--name", "goconc-test",
                "--data-dir", data_dir,
                "--listen-client-urls", client_url,
                "--advertise-client-urls", client_url,
                "--listen-peer-urls", peer_url,
                "--initial-advertise-peer-urls", peer_url,
                "--initial-cluster", f"goconc-test={peer_url}",
                "--initial-cluster-state", "new",
                "--logger", "zap",
                "--log-outputs", "stderr",
                "--log-level", "warn",
            ]  # fmt: skip
            log_path = Path(tmp, f"etcd{attempt}.log")
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                if _wait_ready(proc, functools.partial(_etcd_healthy, client_url)):
                    yield EtcdServer("127.0.0.1", client, proc.pid, data_dir)
                    return
            finally:
                _stop(proc)
            if attempt == 2:
                raise RuntimeError(f"etcd did not start on {client_url}:\n" + _tail(log_path))


@pytest.fixture(scope="module")
def redis_service() -> Iterator[RedisServer]:
    """A private redis-server for the tests of one module."""
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def etcd_service() -> Iterator[EtcdServer]:
    """A private etcd for the tests of one module."""
    with etcd_server() as server:
        yield server


def _scratch() -> str | None:
    """Where servers keep their data: memory (/dev/shm) when there is one, so that etcd's
    fsyncs stay fast on a machine whose disk is busy; else the default temporary directory."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK) else None


def _wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> bool:
    """Poll ``ready()`` until it is true; False if the process exited (e.g. port taken)."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.05)
    raise RuntimeError(f"{proc.args!r} did not become ready in {_START_TIMEOUT} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(_STOP_TIMEOUT)


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _etcd_healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1.0) as response:
            return bool(json.load(response).get("health") == "true")
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
