"""A small client of etcd's v3 JSON gateway (gRPC-gateway over HTTP), standard library only.

etcd serves its v3 API as JSON under ``/v3/`` (3.4 and later; 3.4 also keeps ``/v3beta/``):
``POST /v3/<service>/<method>`` with the request message as JSON, bytes fields in base64 and
64-bit integers as strings. Streaming calls (``/v3/watch``) answer with one JSON object per
line, ``{"result": {...}}`` or ``{"error": {...}}``.

Every call is bounded: by the caller's deadline and ``ctx`` and by the client's per-request
timeout. A ``ctx`` that ends during a call shuts the connection down at once, so the call
returns promptly with ``ctx.err()``.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .. import context

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["EtcdError", "EtcdUnavailable", "Gateway", "Stream", "b64", "unb64"]

_API = "/v3/"


class EtcdError(Exception):
    """etcd refused a request: ``code`` is the gRPC status code, ``message`` etcd's text."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message if code is None else f"{message} (gRPC code {code})")
        self.code = code
        self.message = message


class EtcdUnavailable(ConnectionError):
    """No etcd endpoint could be reached."""


def b64(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


class _Endpoint:
    __slots__ = ("host", "port", "tls", "url")

    def __init__(self, url: str) -> None:
        if not isinstance(url, str):
            raise TypeError(f"an etcd endpoint must be a str URL, got {type(url).__name__}")
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"an etcd endpoint must look like 'http://127.0.0.1:2379', got {url!r}"
            )
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or 2379
        self.tls = parts.scheme == "https"

    def connect(self, timeout: float) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)


class Gateway:
    """Requests to the first etcd endpoint that answers (the last one that did is tried first)."""

    def __init__(self, endpoints: Sequence[str], request_timeout: float) -> None:
        if not endpoints:
            raise ValueError("endpoints must name at least one etcd URL")
        self.endpoints = [_Endpoint(url) for url in endpoints]
        self.request_timeout = request_timeout
        self._mu = threading.Lock()
        self._preferred = 0  # guarded by _mu: index of the endpoint that answered last

    def _order(self) -> list[tuple[int, _Endpoint]]:
        with self._mu:
            first = self._preferred
        n = len(self.endpoints)
        return [((first + i) % n, self.endpoints[(first + i) % n]) for i in range(n)]

    def _answered(self, index: int) -> None:
        with self._mu:
            self._preferred = index

    def _limit(self, deadline: float | None, ctx: Context | None, what: str) -> float:
        if ctx is not None and (err := ctx.err()) is not None:
            raise err
        limit = self.request_timeout
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"etcd {what}: timed out")
            limit = min(limit, left)
        return limit

    def call(
        self, method: str, body: dict[str, Any], *, deadline: float | None, ctx: Context | None
    ) -> dict[str, Any]:
        """POST ``body`` to ``/v3/<method>`` and return the decoded answer.

        Raises ``EtcdError`` when etcd answers with an error, ``EtcdUnavailable`` when no
        endpoint can be reached, ``TimeoutError`` or ``ctx.err()``.
        """
        failures: list[str] = []
        payload = json.dumps(body).encode()
        for index, endpoint in self._order():
            limit = self._limit(deadline, ctx, method)
            conn = endpoint.connect(limit)
            stop = _shutdown_on_done(ctx, conn)
            try:
                conn.request("POST", _API + method, body=payload, headers=_HEADERS)
                response = conn.getresponse()
                data = response.read()
            except (ConnectionRefusedError, ConnectionResetError, socket.gaierror) as e:
                _raise_if_done(ctx, e)
                failures.append(f"{endpoint.url}: {e}")
                continue
            except (TimeoutError, OSError, http.client.HTTPException) as e:
                _raise_if_done(ctx, e)
                if isinstance(e, TimeoutError):
                    raise TimeoutError(f"etcd {method}: no answer in {limit:.3g} s") from e
                failures.append(f"{endpoint.url}: {e!r}")
                continue
            finally:
                stop()
                conn.close()
            self._answered(index)
            return _decode(method, response.status, data)
        raise EtcdUnavailable(f"etcd {method}: no endpoint answered ({'; '.join(failures)})")

    def stream(self, method: str, body: dict[str, Any], *, ctx: Context) -> Stream:
        """Open a streaming call; its messages are read with :meth:`Stream.messages`.

        The stream is shut down when ``ctx`` ends (or by ``Stream.close``).
        """
        failures: list[str] = []
        payload = json.dumps(body).encode()
        for index, endpoint in self._order():
            limit = self._limit(None, ctx, method)
            conn = endpoint.connect(limit)
            stop = _shutdown_on_done(ctx, conn)
            try:
                conn.request("POST", _API + method, body=payload, headers=_HEADERS)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                stop()
                conn.close()
                _raise_if_done(ctx, e)
                failures.append(f"{endpoint.url}: {e!r}")
                continue
            if response.status != 200:
                stop()
                data = response.read()
                conn.close()
                _decode(method, response.status, data)  # raises EtcdError
            if conn.sock is not None:
                # Events may be minutes apart: from now on the read waits for as long as it
                # takes, and ends by ctx (shutdown) or by the server closing the stream.
                conn.sock.settimeout(None)
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if (err := ctx.err()) is not None:
                # ctx ended while connecting, before there was a socket to shut down.
                stop()
                conn.close()
                raise err
            self._answered(index)
            return Stream(conn, response, stop)
        raise EtcdUnavailable(f"etcd {method}: no endpoint answered ({'; '.join(failures)})")


class Stream:
    """One open streaming call."""

    def __init__(
        self,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        stop: Callable[[], bool],
    ) -> None:
        self._conn = conn
        self._response = response
        self._stop = stop

    def messages(self) -> Iterator[dict[str, Any]]:
        """The ``result`` of each message until the stream ends; raises ``EtcdError``."""
        while True:
            line = self._response.readline()
            if not line:
                return
            if not line.strip():
                continue
            message = json.loads(line)
            if "error" in message:
                error = message["error"]
                raise EtcdError(str(error.get("message", error)), error.get("grpc_code"))
            yield message.get("result", {})

    def close(self) -> None:
        self._stop()
        _shutdown(self._conn)
        self._conn.close()


_HEADERS = {"Content-Type": "application/json"}


def _decode(method: str, status: int, data: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(data) if data else {}
    except ValueError:
        answer = {}
    if status != 200 or not isinstance(answer, dict):
        message = answer.get("message") or answer.get("error") if isinstance(answer, dict) else None
        code = answer.get("code") if isinstance(answer, dict) else None
        raise EtcdError(
            f"etcd {method}: {message or data[:200].decode(errors='replace') or status}",
            code if isinstance(code, int) else None,
        )
    return answer


def _shutdown(conn: http.client.HTTPConnection) -> None:
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # not connected (yet, or any more)


def _shutdown_on_done(ctx: Context | None, conn: http.client.HTTPConnection) -> Callable[[], bool]:
    """Shut ``conn`` down when ``ctx`` ends, so that a blocked read returns at once."""
    if ctx is None:
        return _no_stop
    return context.after_func(ctx, lambda: _shutdown(conn))


def _no_stop() -> bool:
    return False


def _raise_if_done(ctx: Context | None, cause: BaseException) -> None:
    if ctx is not None and (err := ctx.err()) is not None:
        raise err from cause
