"""An acknowledged write survives kill -9: a writer process prints each crash id once ingest_report has
returned (committed), is killed mid-run, and every printed id is in the store afterwards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from fleet_inputs import LAB, analyzed

from ktriage.fleet import FleetStore

WRITER = r"""
import json, sys
from ktriage.fleet import FleetStore
st = FleetStore.open(sys.argv[1])
report = json.load(open(sys.argv[2]))
print("ready", flush=True)
for i in range(100000):
    r = st.ingest_report(report, host=f"host-{i}")
    print(r[0].crash_id, flush=True)
"""


def test_acknowledged_crashes_survive_kill_9(db_url: str, tmp_path: Path) -> None:
    rep = tmp_path / "warn.json"
    rep.write_text(json.dumps(analyzed(LAB / "warn.console.log")))
    FleetStore.open(db_url).close()  # migrate first: the writer's first commit is then a crash
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url, str(rep)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    acked: list[int] = []
    try:
        assert proc.stdout.readline().strip() == "ready"
        while len(acked) < 40:
            line = proc.stdout.readline()
            assert line, "writer died"
            acked.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    st = FleetStore.open(db_url)
    try:
        missing = [i for i in acked if st.get_crash(i) is None]
        assert missing == []
        crashes, total = st.bucket_crashes(st.get_crash(acked[0]).summary.bucket_id, limit=1)  # type: ignore[union-attr]
        assert total >= len(acked)  # perhaps one more, committed but not yet printed
        assert st.get_bucket(crashes[0].bucket_id).summary.count == total  # type: ignore[union-attr]
    finally:
        st.close()
