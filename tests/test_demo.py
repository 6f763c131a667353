"""``goconc demo`` for real: a subprocess on free ports, its endpoints, and SIGTERM under load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import WAIT
from goconc.app.demo import main
from goconc.registry import FileRegistry, from_url

# Starting a Python process that imports uvicorn takes a while on a loaded machine.
START = 60.0
STOP_TIMEOUT = 10.0
IN_FLIGHT = 200
# How long each of those requests takes: all of them must be seen in flight before the
# first one is answered (that took up to about 1 s on a loaded machine).
DELAY = 3.0


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    app: str  # http://127.0.0.1:PORT (no trailing slash)
    debug: str
    registry: Path
    state: Path
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(self.out) + "".join(self.err)


def _pump(stream: Any, into: list[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        into.append(line)
        lines.put(line)
    lines.put(None)


@contextlib.contextmanager
def demo_process(tmp_path: Path, *extra: str, stop_timeout: float = STOP_TIMEOUT) -> Iterator[Demo]:
    registry, state = tmp_path / "registry", tmp_path / "state"
    cmd = [
        sys.executable, "-m", "goconc.cli", "demo",
        "--app-addr", "127.0.0.1:0", "--debug-addr", "127.0.0.1:0",
        "--registry", str(registry), "--state-dir", str(state),
        "--stop-timeout", str(stop_timeout), *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    out: list[str] = []
    err: list[str] = []
    lines: queue.Queue[str | None] = queue.Queue()
    pumps = [
        threading.Thread(target=_pump, args=(proc.stdout, out, lines)),
        threading.Thread(target=_pump, args=(proc.stderr, err, queue.Queue())),
    ]
    for t in pumps:
        t.start()
    try:
        urls: dict[str, str] = {}
        deadline = time.monotonic() + START
        while "ready" not in urls:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            if line is None:
                proc.wait(WAIT)
                for t in pumps:
                    t.join(WAIT)
                pytest.fail(f"the demo exited early ({proc.returncode}):\n{''.join(out + err)}")
            if m := re.match(r"  (app|debug)\s+(http://\S+?)/\s", line):
                urls[m.group(1)] = m.group(2)
            if line.startswith("Ctrl-C or SIGTERM"):
                urls["ready"] = ""
        yield Demo(proc, urls["app"], urls["debug"], registry, state, out, err)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)
        for t in pumps:
            t.join(WAIT)


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT) as resp:
            status, body = resp.status, resp.read()
            ctype = resp.headers.get("content-type", "")
    except urllib.error.HTTPError as e:
        status, body, ctype = e.code, e.read(), e.headers.get("content-type", "")
    return status, json.loads(body) if "json" in ctype else body.decode()


async def raw_get(host: str, port: int, path: str) -> int:
    """One HTTP/1.1 request on its own connection, with nothing but asyncio streams."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    return int(data.split(b" ", 2)[1])


def instances(registry: Path) -> list[Any]:
    with FileRegistry(registry) as reg:
        return reg.get_service("demo", timeout=WAIT)


def wait_for(predicate: Any, timeout: float = START) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_the_demo_serves_registers_and_drains_200_requests_in_flight_on_sigterm(
    tmp_path: Path,
) -> None:
    with demo_process(tmp_path) as demo:
        # The service and where it is registered.
        (inst,) = instances(demo.registry)
        assert inst.endpoints == (demo.app,)
        status, body = get(f"{demo.app}/hello?name=gopher")
        assert status == 200 and body == {"message": "hello, gopher!", "instance": inst.id}
        status, body = get(f"{demo.app}/fanout")
        assert status == 200 and {b["status"] for b in body["backends"].values()} == {"ok"}
        status, body = get(f"{demo.app}/fanout?fail=c")
        assert status == 502 and body["backends"]["c"]["status"].startswith("failed")
        assert body["backends"]["a"]["status"].startswith("cancelled")
        status, body = get(f"{demo.app}/fanout?slow=b")
        assert status == 504 and body["backends"]["b"]["status"] == "deadline exceeded"
        assert get(f"{demo.app}/config")[1]["greeting"] == "hello"
        # The debug server.
        assert get(f"{demo.debug}/healthz") == (200, "ok\n")
        assert get(f"{demo.debug}/readyz") == (200, "ready\n")
        assert "goroutine" in get(f"{demo.debug}/debug/goroutines")[1]
        assert "goconc_runtime_goroutines" in get(f"{demo.debug}/metrics")[1]
        status, info = get(f"{demo.debug}/debug/vars")
        assert info["app"]["name"] == "demo" and info["app"]["state"] == "running"
        assert info["statistics"]["tracker:demo"]["accepted"] >= 5
        served_before = 5

        # 200 requests in flight (each answered after DELAY s), then SIGTERM.
        port = int(demo.app.rsplit(":", 1)[1])

        def in_flight() -> int:
            n: int = get(f"{demo.debug}/debug/vars")[1]["app"]["servers"]["app"]["active"]
            return n

        async def load() -> tuple[list[int | BaseException], float, int | None]:
            tasks = [
                asyncio.create_task(raw_get("127.0.0.1", port, f"/hello?delay={DELAY:g}"))
                for _ in range(IN_FLIGHT)
            ]
            await asyncio.to_thread(wait_for, lambda: in_flight() == IN_FLIGHT)
            demo.proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            results = await asyncio.wait_for(
                asyncio.gather(*tasks, return_exceptions=True), STOP_TIMEOUT + WAIT
            )
            code = await asyncio.to_thread(demo.proc.wait, STOP_TIMEOUT + WAIT)
            return results, time.monotonic() - t0, code

        results, elapsed, code = asyncio.run(load())
        assert results == [200] * IN_FLIGHT  # every request accepted before the signal
        assert code == 0, demo.text()
        assert elapsed < STOP_TIMEOUT  # the drain took what the requests needed, no more
    text = demo.text()
    assert f"drained {IN_FLIGHT} request(s) in flight" in text
    assert "(0 cancelled at the deadline)" in text
    assert instances(demo.registry) == []  # deregistered
    # Every request was reported to the tracker, and delivered before the exit.
    events = [json.loads(line) for line in (demo.state / "events.jsonl").read_text().splitlines()]
    assert len(events) == served_before + IN_FLIGHT
    assert sum(e["data"]["path"] == "/hello" for e in events) == 1 + IN_FLIGHT


def test_config_changes_apply_without_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"greeting": "hello"}))
    with demo_process(tmp_path, "--config", str(config)) as demo:
        assert get(f"{demo.app}/hello?name=a")[1]["message"] == "hello, a!"
        config.write_text(json.dumps({"greeting": "bonjour", "deadline": 0.25}))
        wait_for(lambda: get(f"{demo.app}/hello?name=a")[1]["message"] == "bonjour, a!")
        assert get(f"{demo.app}/config")[1]["deadline"] == 0.25
        config.write_text("{ not json")  # a broken edit is reported and ignored
        wait_for(lambda: "keeping the previous config" in "".join(demo.err))
        assert get(f"{demo.app}/hello?name=a")[1]["message"] == "bonjour, a!"
        demo.proc.send_signal(signal.SIGTERM)
        assert demo.proc.wait(STOP_TIMEOUT + WAIT) == 0


def test_a_second_sigterm_forces_a_prompt_exit(tmp_path: Path) -> None:
    with demo_process(tmp_path, stop_timeout=120) as demo:
        port = int(demo.app.rsplit(":", 1)[1])
        results: list[Any] = []

        def slow_request() -> None:
            try:
                results.append(asyncio.run(raw_get("127.0.0.1", port, "/hello?delay=60")))
            except Exception as e:
                results.append(e)

        t = threading.Thread(target=slow_request)
        t.start()
        wait_for(lambda: get(f"{demo.debug}/debug/vars")[1]["app"]["servers"]["app"]["active"])
        demo.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping, 1 request(s) in flight" in "".join(demo.err))
        t0 = time.monotonic()
        demo.proc.send_signal(signal.SIGTERM)
        code = demo.proc.wait(STOP_TIMEOUT + WAIT)
        assert time.monotonic() - t0 < STOP_TIMEOUT  # nowhere near the 120 s stop timeout
        t.join(WAIT)
    assert code == 1
    assert "forced to stop" in demo.text() and "second SIGTERM" in demo.text()


def test_an_app_port_in_use_stops_the_debug_server_and_reports_the_bind_error(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cmd = [
            sys.executable, "-m", "goconc.cli", "demo",
            "--app-addr", f"127.0.0.1:{port}", "--debug-addr", "127.0.0.1:0",
            "--registry", str(tmp_path / "registry"), "--state-dir", str(tmp_path / "state"),
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=START)
    assert done.returncode == 1, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "in use" in done.stderr.lower()
    assert "debug: stopping" in done.stderr  # the other server was stopped
    assert instances(tmp_path / "registry") == []


def test_a_non_loopback_debug_address_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug-addr", "0.0.0.0:8001", "--registry", "memory:"]) == 2
    assert "loopback" in capsys.readouterr().err


def test_bad_arguments_exit_with_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--stop-timeout", "0", "--registry", "memory:"]) == 2
    assert "stop_timeout" in capsys.readouterr().err
    missing = tmp_path / "missing.json"
    assert main(["--config", str(missing), "--registry", "memory:"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_the_demo_registers_in_etcd_and_is_gone_after_sigterm(tmp_path: Path) -> None:
    from services import etcd_server

    with etcd_server() as etcd:
        url = f"etcd://{etcd.host}:{etcd.port}"
        with demo_process(tmp_path, "--registry", url) as demo, from_url(url) as reg:
            (inst,) = reg.get_service("demo", timeout=WAIT)
            assert inst.endpoints == (demo.app,)
            demo.proc.send_signal(signal.SIGTERM)
            assert demo.proc.wait(STOP_TIMEOUT + WAIT) == 0
            assert reg.get_service("demo", timeout=WAIT) == []
