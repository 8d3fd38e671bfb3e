"""`ktriage fleet ...` end to end on the lab's console logs (exit codes, one-line errors, JSON output)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner
from fleet_inputs import LAB, LAB_ARM64

from ktriage.cli import main


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def test_ingest_buckets_show(db_url: str, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.bin"
    bad.write_bytes(bytes(range(256)) * 16)
    code, out, err = run("fleet", "ingest", "--db", db_url, "--host", "web1", str(LAB / "panic.console.log"), str(bad))
    assert code == 3
    lines = out.splitlines()
    assert len(lines) == 2
    assert re.match(
        r"new: crash \d+ -> bucket kt1-[0-9a-f]{16} \(new bucket\) \[new\]: kernel panic: crashmod", lines[0]
    )
    assert lines[1].startswith("unreadable: ") and "garbage.bin" in lines[1] and "binary data" in lines[1]
    assert "1 new, 0 already stored, 1 unreadable" in err

    code, out, _ = run("fleet", "ingest", "--db", db_url, "--host", "web2", str(LAB), str(LAB_ARM64))
    assert code == 0
    assert out.count("already stored") == 0 and out.count("\nnew: ") + out.startswith("new: ") == 24
    code, out, _ = run("fleet", "ingest", "--db", db_url, "--host", "web2", str(LAB / "warn.console.log"))
    assert code == 0 and out.startswith("already stored: crash ")

    code, out, _ = run("fleet", "buckets", "--db", db_url, "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["total"] == 20 and sum(b["count"] for b in doc["buckets"]) == 25
    panic = next(b for b in doc["buckets"] if b["title"].startswith("kernel panic"))
    assert (panic["count"], panic["hosts"], panic["kernels"], panic["state"]) == (3, 2, ["6.1.192"], "new")
    code, out, _ = run("fleet", "buckets", "--db", db_url, "--kind", "soft-lockup")
    assert code == 0 and out.count("kt1-") == 1 and "BUG: soft lockup in crashmod_spin" in out
    assert "    new: no known bug matches" in out  # what the state means, under the row
    code, out, _ = run("fleet", "buckets", "--db", db_url, "--kernel", "4.19.0", "--format", "json")
    assert json.loads(out)["total"] == 0
    code, _, err = run("fleet", "buckets", "--db", db_url, "--since", "yesterday")
    assert code == 2 and "not a date" in err

    code, out, _ = run("fleet", "show", "--db", db_url, panic["id"])
    assert code == 0
    assert "3 crashes on 2 hosts" in out and "6.1.192" in out and "representative report:" in out
    assert "  new: no known bug in the knowledge base matches these crashes" in out
    assert "kernel panic: crashmod: explicit panic requested" in out and "web1" in out
    code, _, err = run("fleet", "show", "--db", db_url, "kt1-0000000000000000")
    assert code == 2 and err.strip() == "ktriage: no bucket kt1-0000000000000000"


def test_merge_split_undo_tokens(db_url: str) -> None:
    run("fleet", "ingest", "--db", db_url, str(LAB / "warn.console.log"), str(LAB_ARM64 / "warn.console.log"))
    doc = json.loads(run("fleet", "buckets", "--db", db_url, "--format", "json")[1])
    a, b = sorted(x["id"] for x in doc["buckets"])
    code, out, _ = run("fleet", "merge", "--db", db_url, a, b, "--who", "alice", "--why", "same WARN on two arches")
    assert code == 0
    act = re.search(r"action (\d+)", out).group(1)  # type: ignore[union-attr]
    show = json.loads(run("fleet", "show", "--db", db_url, "--format", "json", b)[1])
    assert show["bucket"]["id"] == a and show["bucket"]["count"] == 2
    assert any(h["action"] == "merge" and h["who"] == "alice" for h in show["history"])
    code, out, _ = run("fleet", "undo", "--db", db_url, act, "--who", "alice")
    assert code == 0
    code, _, err = run("fleet", "undo", "--db", db_url, act)
    assert code == 2 and "already undone" in err
    code, out, _ = run("fleet", "rebucket", "--db", db_url)
    assert code == 0 and out.startswith("2 reports re-read, 0 signatures added, 0 buckets merged")

    code, secret, _ = run("fleet", "token", "create", "--db", db_url, "rack1")
    assert code == 0 and secret.startswith("kt_")
    code, _, err = run("fleet", "token", "create", "--db", db_url, "rack1")
    assert code == 2 and "exists" in err
    assert run("fleet", "token", "revoke", "--db", db_url, "rack1")[0] == 0
    code, _, err = run("fleet", "token", "revoke", "--db", db_url, "rack1")
    assert code == 2 and "no active token" in err


def test_database_from_environment(tmp_path: Path) -> None:
    code, _, _ = run("fleet", "ingest", str(LAB / "warn.console.log"), env={"KTRIAGE_DB": f"sqlite:///{tmp_path}/e.db"})
    assert code == 0 and (tmp_path / "e.db").exists()
    code, _, _ = run(
        "fleet", "ingest", str(LAB / "warn.console.log"), env={"KTRIAGE_DB": "", "XDG_DATA_HOME": str(tmp_path / "xdg")}
    )
    assert code == 0 and (tmp_path / "xdg" / "ktriage" / "fleet.db").exists()
    code, _, err = run("fleet", "buckets", "--db", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert code == 3 and err.startswith("ktriage: cannot open the fleet database") and len(err.splitlines()) == 1


def test_fleet_help_needs_no_database_driver() -> None:
    """`ktriage fleet --help` lists the commands without importing SQLAlchemy (the extra may be missing)."""
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from ktriage.cli import main; "
        "r = CliRunner().invoke(main, ['fleet', '--help']); "
        "print(r.exit_code, 'sqlalchemy' in sys.modules, 'rebucket' in r.output)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "False", "True"]
