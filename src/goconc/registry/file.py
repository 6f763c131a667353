"""FileRegistry: the embedded default, a directory shared by the processes of one machine.

Layout: ``<directory>/<service name>/<instance id>.json``, one JSON file per instance holding
the instance (go-kratos's fields) and its owner: the registering process's pid, that
process's start time and its pid namespace.

Guarantees:

* Readers never see a partial file: a registration writes a temporary file in the same
  directory and renames it over the old one (an atomic replace).
* A process that died without deregistering disappears: every read checks that each owner
  is alive (same pid *and* same start time, so a recycled pid does not resurrect it; a
  zombie counts as dead) and removes the files of dead owners. Owners in another pid
  namespace cannot be checked and are kept.
* Writers and the removal of stale files are serialised per service by an ``flock`` on
  ``<service>/.lock``, so a stale-file sweep never removes a file that was just re-registered.
* Watchers poll the service's directory every ``poll_interval`` seconds (0.2 by default) from
  a goroutine of their own, which stops with the watcher.

The default directory is ``$GOCONC_REGISTRY_DIR``, else ``goconc-registry-<uid>`` in the
system's temporary directory; it is created private to the user (mode 0700).

Thread use::

    with FileRegistry() as registry:
        registry.register(instance)          # visible to every process on this machine
        peers = registry.get_service("greeter")

asyncio use::

    await registry.aregister(instance, timeout=5)
    async for instances in registry.watch("greeter"):
        ...
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import context
from ._base import Feed, RegistryBase
from ._util import check_instance, check_service_name, deadline_of, remaining, sleep
from .core import Watcher
from .instance import ServiceInstance

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["FileRegistry", "default_directory"]

_log = logging.getLogger("goconc.registry")

_SUFFIX = ".json"
_LOCK_NAME = ".lock"
# The first pause between two attempts at a busy service lock, doubled up to the maximum.
_LOCK_PAUSE = 0.001
_LOCK_PAUSE_MAX = 0.02


def default_directory() -> Path:
    """``$GOCONC_REGISTRY_DIR``, else ``<tmp>/goconc-registry-<uid>``."""
    configured = os.environ.get("GOCONC_REGISTRY_DIR")
    if configured:
        return Path(configured)
    return Path(tempfile.gettempdir()) / f"goconc-registry-{os.getuid()}"


class FileRegistry(RegistryBase):
    """Service instances in a directory, visible to every process of this machine.

    ``close()`` stops the watchers and removes the instances registered through this
    object. ``poll_interval`` is how often watchers look for changes (seconds, > 0).

    Raises ``PermissionError`` if ``directory`` exists and belongs to another user.
    """

    _kind = "FileRegistry"

    def __init__(
        self, directory: str | os.PathLike[str] | None = None, *, poll_interval: float = 0.2
    ) -> None:
        if not isinstance(poll_interval, int | float) or not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval!r}")
        super().__init__()
        self.directory = Path(directory) if directory is not None else default_directory()
        self.poll_interval = float(poll_interval)
        _make_private_dir(self.directory)
        # guarded by _mu: (name, id) of each instance registered through this object
        self._mine: set[tuple[str, str]] = set()
        self._me = _Owner.current()

    def __repr__(self) -> str:
        return f"<FileRegistry {str(self.directory)!r}>"

    def register(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """Write ``instance``'s file (replacing one with the same name and id).

        Raises ``ValueError``/``TypeError`` for an invalid instance, ``TimeoutError`` or
        ``ctx.err()`` if the service lock stays busy, ``OSError`` if the file cannot be written.
        """
        check_instance(instance)
        deadline = deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
        record = instance.to_dict() | {"owner": self._me.to_dict()}
        data = json.dumps(record, sort_keys=True).encode()
        service_dir = self.directory / instance.name
        service_dir.mkdir(mode=0o700, exist_ok=True)
        path = service_dir / (instance.id + _SUFFIX)
        with _service_lock(service_dir, deadline, ctx):
            _write_atomically(path, data)
        with self._mu:
            self._mine.add((instance.name, instance.id))

    def deregister(
        self, instance: ServiceInstance, *, timeout: float | None = None, ctx: Context | None = None
    ) -> None:
        """Remove the file of ``instance``'s name and id, if present (whoever registered it)."""
        check_instance(instance, registering=False)
        deadline = deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
        self._remove(instance.name, instance.id, deadline, ctx)

    def get_service(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> list[ServiceInstance]:
        """The instances of ``name`` whose processes are alive, sorted by id.

        Files of dead processes are removed on the way.
        """
        check_service_name(name)
        deadline = deadline_of(timeout, ctx)
        with self._mu:
            self._check_open()
        return self._scan(name, deadline, ctx)

    def watch(
        self, name: str, *, timeout: float | None = None, ctx: Context | None = None
    ) -> Watcher:
        """A watcher of ``name``'s instances, fed by a polling goroutine of its own."""
        check_service_name(name)
        deadline = deadline_of(timeout, ctx)
        w = Watcher(name, self._scan(name, deadline, ctx))
        self._add_watcher(w)
        w._set_on_stop(Feed(f"FileRegistry watch {name}", self._poll, w).stop)
        return w

    def _poll(self, ctx: Context, w: Watcher) -> None:
        while not sleep(ctx, self.poll_interval):
            try:
                w._publish(self._scan(w.name, None, ctx))
            except OSError as e:
                _log.warning("FileRegistry: cannot read %s: %s", self.directory / w.name, e)
        self._forget_watcher(w)

    def _scan(
        self, name: str, deadline: float | None, ctx: Context | None
    ) -> list[ServiceInstance]:
        service_dir = self.directory / name
        live: list[ServiceInstance] = []
        stale: list[tuple[Path, os.stat_result]] = []
        for path in _instance_files(service_dir):
            entry = _read(path)
            if entry is None:
                continue
            instance, owner, st = entry
            if owner.alive(self._me):
                live.append(instance)
            else:
                stale.append((path, st))
        if stale:
            self._prune(service_dir, stale, deadline, ctx)
        return sorted(live, key=lambda i: i.id)

    def _prune(
        self,
        service_dir: Path,
        stale: list[tuple[Path, os.stat_result]],
        deadline: float | None,
        ctx: Context | None,
    ) -> None:
        with _service_lock(service_dir, deadline, ctx):
            for path, st in stale:
                # Remove the file only if it is still the one found stale (same inode and
                # mtime): a process may have registered the same id again meanwhile.
                with contextlib.suppress(FileNotFoundError):
                    now = path.stat()
                    if (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns):
                        path.unlink()
                        _log.info("FileRegistry: removed %s (its process is gone)", path)

    def _remove(
        self, name: str, instance_id: str, deadline: float | None, ctx: Context | None
    ) -> None:
        service_dir = self.directory / name
        if service_dir.is_dir():
            with _service_lock(service_dir, deadline, ctx), contextlib.suppress(FileNotFoundError):
                (service_dir / (instance_id + _SUFFIX)).unlink()
        with self._mu:
            self._mine.discard((name, instance_id))

    def _close(self) -> None:
        with self._mu:
            mine = sorted(self._mine)
        for name, instance_id in mine:
            try:
                self._remove(name, instance_id, None, None)
            except OSError as e:
                _log.warning("FileRegistry: cannot remove %s/%s: %s", name, instance_id, e)


class _Owner:
    """The process that registered an instance: pid, start time, pid namespace."""

    __slots__ = ("namespace", "pid", "start")

    def __init__(self, pid: int, start: int | None, namespace: str | None) -> None:
        self.pid = pid
        self.start = start
        self.namespace = namespace

    @classmethod
    def current(cls) -> _Owner:
        pid = os.getpid()
        stat = _proc_stat(pid)
        return cls(pid, stat[1] if stat else None, _pid_namespace())

    @classmethod
    def from_dict(cls, data: Any) -> _Owner:
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            raise ValueError(f"no owner pid in {data!r}")
        start = data.get("start")
        namespace = data.get("pid_namespace")
        return cls(
            data["pid"],
            start if isinstance(start, int) else None,
            namespace if isinstance(namespace, str) else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "start": self.start, "pid_namespace": self.namespace}

    def alive(self, me: _Owner) -> bool:
        """Whether this owner still runs (True when that cannot be known from here)."""
        if self.namespace != me.namespace:
            return True  # another pid namespace: its pids mean nothing here
        if me.start is not None:  # /proc is there: exact answer
            stat = _proc_stat(self.pid)
            if stat is None or stat[0] in ("Z", "X"):
                return False
            return self.start is None or stat[1] == self.start
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses; it ends at the last ')'.
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _make_private_dir(directory: Path) -> None:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = directory.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(
            f"registry directory {str(directory)!r} belongs to uid {st.st_uid}, not to this user"
        )


def _instance_files(service_dir: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(service_dir))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.name.endswith(_SUFFIX) and not entry.name.startswith("."):
            yield Path(entry.path)


def _read(path: Path) -> tuple[ServiceInstance, _Owner, os.stat_result] | None:
    """The instance in ``path``, its owner and the file's stat; None if gone or foreign."""
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            record = json.loads(f.read())
        return ServiceInstance.from_dict(record), _Owner.from_dict(record.get("owner")), st
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as e:
        _log.warning("FileRegistry: ignoring unreadable %s: %s", path, e)
        return None


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _service_lock(service_dir: Path, deadline: float | None, ctx: Context | None) -> Iterator[None]:
    """Hold the service's ``flock``; waits (within ``deadline``/``ctx``) while it is busy.

    Holders keep it for a few file operations only, so the wait polls with short pauses.
    """
    fd = os.open(service_dir / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        pause = _LOCK_PAUSE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            left = remaining(deadline)
            if left == 0:
                if ctx is not None and (err := ctx.err()) is not None:
                    raise err
                raise TimeoutError(f"FileRegistry: {service_dir} stayed locked")
            _pause(pause if left is None else min(pause, left), ctx)
            pause = min(pause * 2, _LOCK_PAUSE_MAX)
        yield
    finally:
        os.close(fd)  # also releases the flock


def _pause(seconds: float, ctx: Context | None) -> None:
    if ctx is None:
        ctx = context.background()
    if sleep(ctx, seconds):
        err = ctx.err()
        assert err is not None
        raise err
