"""Lesson: leave concurrency to the caller - ListDirectory three ways.

In Go the same function can be written three ways::

    func ListDirectory(dir string) ([]string, error)        // 1. everything at once
    func ListDirectory(dir string) chan string              // 2. a channel
    func ListDirectory(dir string, fn func(string) error) error  // 3. a callback

1. Returning everything is simple, but the caller waits for the whole
   directory and holds all of it in memory.
2. The channel streams, but: the caller cannot tell an error from the end of
   the listing (both just close the channel); a caller that stops reading
   early leaves the listing goroutine blocked on its send forever, so it must
   drain the channel; and the function, not the caller, decided to start a
   goroutine.
3. The callback streams too, and leaves concurrency to the caller: errors are
   returned, the caller stops early by returning ``False``, and a caller who
   wants the listing to run concurrently starts the goroutine itself.  This is
   the shape of ``filepath.WalkDir``.

Run: ``python examples/list_directory.py``
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from goconc import Chan
from goconc.runtime import go_named
from goconc.testing import find_leaks, live_ids


def list_directory(path: str) -> list[str]:
    """1. Every entry at once (raises OSError on failure)."""
    with os.scandir(path) as it:
        return sorted(entry.name for entry in it)


def _send_entries(path: str, ch: Chan[str]) -> None:
    try:
        with os.scandir(path) as it:
            for entry in it:
                ch.send(entry.name)
    except OSError:
        pass  # the flaw of this shape: the caller only sees the channel close
    finally:
        ch.close()


def list_directory_chan(path: str) -> Chan[str]:
    """2. A channel of entries, closed at the end - or on an error, indistinguishably."""
    ch: Chan[str] = Chan()
    go_named("list_directory_chan", _send_entries, path, ch)
    return ch


def list_directory_walk(path: str, fn: Callable[[str], bool | None]) -> None:
    """3. Call ``fn(name)`` for each entry; ``fn`` returns False to stop early.

    Raises OSError on failure; starts no goroutine.
    """
    with os.scandir(path) as it:
        for entry in it:
            if fn(entry.name) is False:
                return


def main(n_files: int = 50) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as d:
        for i in range(n_files):
            open(os.path.join(d, f"file-{i:03}.txt"), "w").close()

        everything = list_directory(d)
        print(f"1. returned everything: {len(everything)} entries")

        streamed = sorted(list_directory_chan(d))
        print(f"2. read the whole channel: {len(streamed)} entries")

        before = live_ids()
        ch = list_directory_chan(d)
        first_three = [ch.recv() for _ in range(3)]
        left_behind = find_leaks(ignore=before)
        print(f"2. stopped after {first_three}: {len(left_behind)} goroutine blocked on its send")
        rest = list(ch)  # the caller has to drain it to let the goroutine end
        print(f"   drained {len(rest)} more entries to release it")

        missing = list(list_directory_chan(os.path.join(d, "no-such-dir")))
        print(f"2. a missing directory looks like an empty one: {missing}")

        seen: list[str] = []

        def take_five(name: str) -> bool:
            seen.append(name)
            return len(seen) < 5

        list_directory_walk(d, take_five)
        print(f"3. callback stopped early after {len(seen)} entries, no goroutine involved")
        try:
            list_directory_walk(os.path.join(d, "no-such-dir"), take_five)
        except FileNotFoundError as e:
            print(f"3. and reports errors: {type(e).__name__}")
            walk_error = True
    return {
        "everything": len(everything),
        "streamed": len(streamed),
        "left_behind": len(left_behind),
        "callback_seen": len(seen),
        "walk_error": walk_error,
    }


if __name__ == "__main__":
    main()
