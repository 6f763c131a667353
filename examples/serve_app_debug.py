"""Lesson: serveApp and serveDebug - when one server fails, stop the other.

In Go (after Dave Cheney's "Practical Go")::

    func serve(addr string, handler http.Handler, stop <-chan struct{}) error {
        s := http.Server{Addr: addr, Handler: handler}
        go func() {
            <-stop // wait for the stop signal
            s.Shutdown(context.Background())
        }()
        return s.ListenAndServe()
    }

    func main() {
        done := make(chan error, 2)
        stop := make(chan struct{})
        go func() { done <- serveDebug(stop) }()
        go func() { done <- serveApp(stop) }()
        var stopped bool
        for i := 0; i < cap(done); i++ {
            if err := <-done; err != nil {
                fmt.Println("error: %v", err)
            }
            if !stopped {
                stopped = true
                close(stop)
            }
        }
    }

The naive version starts the debug server with ``go serveDebug()`` and calls
``serveApp()``: if the debug server dies nobody notices, and if the app server
dies the process exits under the debug server's feet.  Here main owns both
goroutines: each reports its end on ``done`` (buffered, so neither ever blocks
on it), and the first end closes ``stop``, which shuts the other server down.
main returns only once both have ended.

Two real HTTP servers on loopback; the debug server serves a goroutine dump.
The app server is made to fail by asking for a port that is already taken.

The last part does the same with ``goconc.app``, which packages this pattern
(go-kratos's App): an ``App`` starts both servers, the first to fail stops
the other, and ``run()`` reports that server's own error (here the bind
error); SIGINT/SIGTERM or ``app.stop()`` stop both gracefully.

Run: ``python examples/serve_app_debug.py``
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any

from goconc import Chan, runtime, select
from goconc import app as goapp
from goconc import time as gtime
from goconc.runtime import go_named


class _AppHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self._reply(b"Hello, QCon!\n")

    def _reply(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet


class _DebugHandler(_AppHandler):
    def do_GET(self) -> None:
        self._reply(runtime.dump().encode())


def serve(name: str, port: int, handler: type[BaseHTTPRequestHandler], stop: Chan[None]) -> None:
    """Bind a server (raises OSError if it cannot) and serve until ``stop`` is closed."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    stopper = go_named(f"{name} stopper", _shutdown_on, stop, server)
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
        stopper.join()  # it has returned: stop was closed


def _shutdown_on(stop: Chan[None], server: HTTPServer) -> None:
    stop.recv_ok()  # wait for the stop signal
    server.shutdown()


Ended = tuple[str, BaseException | None]


def _report(done: Chan[Ended], name: str, run: Callable[[], object]) -> None:
    try:
        run()
    except Exception as e:
        done.send((name, e))
    else:
        done.send((name, None))


def run_servers(
    app_port: int, debug_port: int, run_for: float, until: Chan[None] | None = None
) -> list[Ended]:
    """Run both servers until one ends, ``until`` is closed or ``run_for`` seconds pass;
    then stop both."""
    done: Chan[Ended] = Chan(2)  # room for both: a reporting goroutine never blocks
    stop: Chan[None] = Chan()
    debug = partial(serve, "debug", debug_port, _DebugHandler, stop)
    app = partial(serve, "app", app_port, _AppHandler, stop)
    go_named("serveDebug", _report, done, "debug", debug)
    go_named("serveApp", _report, done, "app", app)
    ended: list[Ended] = []
    try:
        sel = select(done, until, timeout=run_for)  # (a None case is never chosen)
        if sel.index == 0:
            ended.append(sel.value)  # the first server to end...
    except TimeoutError:
        pass  # ...or time to shut down
    stop.close()  # stops whichever is still serving
    while len(ended) < done.cap:
        ended.append(done.recv())
    for name, err in ended:
        print(f"{name} server ended: {'ok' if err is None else f'error: {err}'}")
    return ended


async def _hello(scope: Any, receive: Any, send: Any) -> None:
    """The app server's ASGI application: says hello."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"Hello, QCon!\n"})


def run_app(app_port: int, debug_port: int, run_for: float) -> BaseException | None:
    """The same with goconc.app: run until one server fails or ``run_for`` seconds pass."""
    app = goapp.App(
        name="serve-app-debug",
        servers=[
            goapp.HTTPServer(_hello, f"127.0.0.1:{app_port}", name="app", lifespan="off"),
            goapp.DebugServer(f"127.0.0.1:{debug_port}", name="debug"),
        ],
        stop_timeout=5.0,
    )
    timer = gtime.after_func(run_for, app.stop)
    try:
        app.run()  # starts both, waits until both are ready, then until the end
    except goapp.AppError as e:
        err = e.exceptions[0]  # the failing server's own error, not a cancellation
        print(f"app.run() reported: {type(err).__name__}: {err}")
        return err
    finally:
        timer.stop()
    print("app.run() returned: both servers stopped cleanly")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
        body: bytes = r.read()
        return body.decode()


def _get_when_listening(port: int, bound: float = 10.0) -> str:
    """``_get``, retried while the server is not listening yet (at most ``bound`` seconds)."""
    deadline = time.monotonic() + bound
    while True:
        try:
            return _get(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def main(run_for: float = 0.3) -> dict[str, object]:
    print("-- both servers up, stopped once a client got its replies:")
    app_port, debug_port = _free_port(), _free_port()
    replies: list[str] = []
    served: Chan[None] = Chan()  # closed by the client when it is done

    def client() -> None:
        try:
            replies.append(_get_when_listening(app_port).strip())
            replies.append(_get_when_listening(debug_port).splitlines()[0])
        finally:
            served.close()

    c = go_named("client", client)
    clean = run_servers(app_port, debug_port, run_for=30.0, until=served)
    c.join()
    print(f"client got: {replies}")

    print("-- the app server fails at once (its port is taken):")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        failed = run_servers(taken.getsockname()[1], 0, run_for=5.0)
    print(f"goroutines left: {runtime.num_goroutine()}")

    print("-- the same with goconc.app, cleanly and with the app port taken:")
    app_clean = run_app(_free_port(), _free_port(), run_for)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        app_failed = run_app(taken.getsockname()[1], 0, run_for=5.0)
    return {
        "clean": [(n, e is None) for n, e in clean],
        "failed": [(n, e is None) for n, e in failed],
        "replies": replies,
        "app_clean": app_clean,
        "app_failed": app_failed,
    }


if __name__ == "__main__":
    main()
