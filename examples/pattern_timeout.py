"""Go concurrency patterns: timing out.

From "Go Concurrency Patterns: Timing out, moving on" (Go blog, 2010)::

    timeout := make(chan bool, 1)
    go func() {
        time.Sleep(1 * time.Second)
        timeout <- true
    }()
    select {
    case <-ch:
        // a read from ch has occurred
    case <-timeout:
        // the read from ch has timed out
    }

The ``timeout`` channel is buffered so that the sleeping goroutine can always
send and exit, even if ``ch`` won.  ``time.After`` does the same without a
goroutine of your own; a timeout per message differs from a timeout for the
whole conversation (Rob Pike, "Go Concurrency Patterns", 2012)::

    for {
        select {
        case s := <-c:
            fmt.Println(s)
        case <-time.After(1 * time.Second):   // per message
            fmt.Println("You're too slow.")
            return
        }
    }

    timeout := time.After(5 * time.Second)    // for the whole loop
    for { select { case s := <-c: ...; case <-timeout: return } }

In goconc every blocking call also takes ``timeout=`` and ``ctx=``, and
``patterns.with_timeout`` bounds a whole call.

Run: ``python examples/pattern_timeout.py``
"""

from __future__ import annotations

import time as _time

from goconc import Chan, context, go, select
from goconc import time as gotime
from goconc.patterns import with_timeout


def boring(msg: str, delays: list[float], ctx: context.Context) -> Chan[str]:
    """Pike's "boring" generator: says ``msg`` after each delay, until ``ctx`` ends."""
    c: Chan[str] = Chan()

    def run() -> None:
        try:
            for i, d in enumerate(delays):
                gotime.sleep(d, ctx=ctx)
                c.send(f"{msg} {i}", ctx=ctx)
        except (context.Canceled, context.DeadlineExceeded):
            pass
        finally:
            c.close()

    go(run)
    return c


def timeout_goroutine(ch: Chan[str], after: float) -> str:
    """The blog's version: a goroutine and a buffered channel of one."""
    timeout: Chan[bool] = Chan(1)

    def sleeper() -> None:
        _time.sleep(after)
        timeout.send(True)  # never blocks: the buffer has room

    go(sleeper)
    sel = select(ch, timeout)
    return f"read {sel.value!r}" if sel.index == 0 else "timed out"


def per_message(c: Chan[str], each: float) -> list[str]:
    got = []
    while True:
        sel = select(c, gotime.after(each))
        if sel.index == 1:
            got.append("You're too slow.")
            return got
        if not sel.ok:
            return got
        got.append(sel.value)


def whole_conversation(c: Chan[str], total: float) -> list[str]:
    got = []
    timeout = gotime.after(total)
    while True:
        sel = select(c, timeout)
        if sel.index == 1:
            got.append("You talk too much.")
            return got
        if not sel.ok:
            return got
        got.append(sel.value)


def main(unit: float = 0.01) -> dict[str, object]:
    out: dict[str, object] = {}
    quiet: Chan[str] = Chan()
    out["goroutine_timeout"] = timeout_goroutine(quiet, after=2 * unit)
    print(f"select on a timeout channel: {out['goroutine_timeout']}")

    with context.with_cancel(context.background()) as ctx:
        # fast messages, then one slow one: the per-message timeout fires on the slow one
        c = boring("Joe", [unit, unit, unit, 10 * unit], ctx)
        out["per_message"] = per_message(c, each=4 * unit)
        print(f"per message: {out['per_message']}")

    with context.with_cancel(context.background()) as ctx:
        # a steady stream that would go on for a long time: the total timeout ends it
        c = boring("Ann", [unit] * 1000, ctx)
        whole = whole_conversation(c, total=8 * unit)
        out["whole"] = whole
        print(f"whole conversation: {len(whole) - 1} messages, then {whole[-1]}")

    try:
        quiet.recv(timeout=unit)
    except TimeoutError as e:
        out["recv_timeout"] = type(e).__name__
        print(f"ch.recv(timeout=...): {e}")

    def slow_lookup(ctx: context.Context) -> str:
        gotime.sleep(10 * unit, ctx=ctx)  # honours ctx: stops when the caller gives up
        return "found"

    try:
        with_timeout(2 * unit, slow_lookup)
    except context.DeadlineExceeded as e:
        out["with_timeout"] = str(e)
        print(f"patterns.with_timeout: {e}")
    return out


if __name__ == "__main__":
    main()
