"""goconc.tracker with a spool survives kill -9: every accepted event is delivered.

A child process accepts events as fast as it can into a tracker with a spool
and a deliberately slow JSONL sink, writing each id to a log once ``event()``
has returned for it.  It is killed with SIGKILL mid-stream (events queued,
in a batch, half-written to the sink), twice, then restarted a last time to
drain.  Every id in the log must then be in the sink's file; duplicates (an
event delivered just before a crash whose ack was lost) are allowed and
counted.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from conftest import WAIT

pytestmark = pytest.mark.goconc_leaks

CHILD = r"""
import json, os, sys, time
from goconc import context, go
from goconc.tracker import CallableSink, JsonlSink, Tracker

work, mode = sys.argv[1], sys.argv[2]
jsonl = JsonlSink(os.path.join(work, "sink.jsonl"))

def slow(batch):
    time.sleep(0.002)  # a slow backend: the queue and the spool fill up
    jsonl.write(batch)

tracker = Tracker(
    CallableSink(slow),
    spool=os.path.join(work, "spool"),
    buffer=500,
    batch_size=50,
    flush_interval=0.001,
    dead_letter=os.path.join(work, "dead.jsonl"),
)
recovered = tracker.statistics().recovered
worker = go(tracker.run)
log = os.open(os.path.join(work, "accepted.log"), os.O_RDWR | os.O_APPEND | os.O_CREAT)
size = os.fstat(log).st_size
if size and os.pread(log, 1, size - 1) != b"\n":
    os.write(log, b"\n")  # the previous run was killed in the middle of a line
bg = context.background()
n = 0 if mode == "accept" else 200
i = 0
while mode == "accept" or i < n:
    eid = tracker.event(bg, {"run": sys.argv[3], "i": i})
    os.write(log, (eid + "\n").encode())  # only after event() returned: accepted
    i += 1
result = tracker.shutdown(timeout=60)
worker.join(timeout=10)
jsonl.close()
s = tracker.statistics()
print(json.dumps({"recovered": recovered, "accepted": s.accepted, "delivered": s.delivered,
                  "dead_lettered": s.dead_lettered, "err": repr(result.err)}))
"""


def lines_of(path: Path) -> list[str]:
    """The complete ids logged: a line may have been cut by a kill."""
    try:
        data = path.read_text()
    except FileNotFoundError:
        return []
    return [line for line in data.split("\n")[:-1] if len(line) == 36]


def run_child(work: Path, mode: str, run: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(work), mode, str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_every_accepted_event_survives_sigkill_and_is_delivered_after_restart(
    tmp_path: Path,
) -> None:
    log = tmp_path / "accepted.log"
    kills = 0
    for run in range(2):
        target = len(lines_of(log)) + 3_000
        child = run_child(tmp_path, "accept", run)
        try:
            deadline = time.monotonic() + 60
            while len(lines_of(log)) < target:
                assert child.poll() is None, child.stderr.read() if child.stderr else ""
                assert time.monotonic() < deadline, "the child accepted too slowly"
                time.sleep(0.005)
            child.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            if child.poll() is None:
                child.kill()
            child.communicate(timeout=WAIT)
        assert child.returncode == -signal.SIGKILL
        spooled = [p for p in (tmp_path / "spool").iterdir() if p.name.startswith("seg-")]
        assert spooled, "the spool should hold the undelivered events"

    child = run_child(tmp_path, "drain", 2)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    final = json.loads(out.strip().splitlines()[-1])

    accepted = lines_of(log)
    assert len(accepted) >= 6_200 and len(set(accepted)) == len(accepted)
    delivered: Counter[str] = Counter()
    torn = 0
    for line in (tmp_path / "sink.jsonl").read_text().splitlines():
        try:
            delivered[json.loads(line)["id"]] += 1
        except ValueError:
            torn += 1  # a batch cut short by the kill: its events came again
    missing = [i for i in accepted if i not in delivered]
    duplicates = sum(n - 1 for n in delivered.values())
    print(
        f"kills={kills} accepted={len(accepted)} recovered at the last start="
        f"{final['recovered']} duplicates={duplicates} torn={torn}"
    )
    assert missing == []
    assert final["recovered"] > 0 and final["dead_lettered"] == 0 and final["err"] == "None"
    assert final["delivered"] == final["accepted"] + final["recovered"]
    assert torn <= kills
    # A clean stop leaves nothing pending in the spool.
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["LOCK"]
    assert not (tmp_path / "dead.jsonl").exists()
