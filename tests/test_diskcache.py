"""ktriage.diskcache: the knowledge base read back from the per-user cache is the knowledge base.

Real rule files only: the packaged rules, and a user directory holding copies of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ktriage.kb import rules as R

BUGS = Path(R.__file__).parent / "bugs"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("KTRIAGE_CACHE_DIR", str(d))
    monkeypatch.setattr(R, "_CACHE", {})  # the in-process memo would hide the disk cache
    return d


def _entries(d: Path, kind: str = "kb") -> list[Path]:
    return sorted(d.glob(f"{kind}-*.pickle")) if d.exists() else []


def _same(a: R.RuleSet, b: R.RuleSet) -> None:
    assert list(a.rules) == list(b.rules)
    for rid in a.rules:
        x, y = a.rules[rid], b.rules[rid]
        assert (x.data, x.path, x.origin, x.kinds, x.guilty, x.frames, x.any_frames, x.events) == (
            y.data,
            y.path,
            y.origin,
            y.kinds,
            y.guilty,
            y.frames,
            y.any_frames,
            y.events,
        )
        assert (x.title_re.pattern if x.title_re else None) == (y.title_re.pattern if y.title_re else None)
    assert [str(e) for e in a.errors] == [str(e) for e in b.errors]
    assert a.notes == b.notes and a.dirs == b.dirs


def test_second_run_reads_the_cache_and_gets_the_same_rules(cache, monkeypatch):
    first = R.cached_rules()
    assert len(first.rules) == len(list(BUGS.glob("*.yaml"))) and not first.errors
    assert len(_entries(cache)) == 1
    monkeypatch.setattr(R, "_CACHE", {})
    monkeypatch.setattr(R, "load_rules", lambda *a, **k: pytest.fail("rules parsed again despite the cache"))
    _same(R.cached_rules(), first)


def test_a_changed_user_rule_is_a_miss(cache, tmp_path, monkeypatch):
    kb = tmp_path / "kb"
    kb.mkdir()
    src = sorted(BUGS.glob("*.yaml"))[0]
    shutil.copy(src, kb / src.name)
    a = R.cached_rules([str(kb)])
    assert a.rules[next(iter(a.rules))] and not a.errors
    n = len(a.rules)
    (kb / src.name).write_text(src.read_text().replace("id:", "id: !!bad", 1) + "\n")  # now broken
    monkeypatch.setattr(R, "_CACHE", {})
    b = R.cached_rules([str(kb)])
    assert b.errors and str(kb / src.name) in str(b.errors[0]), "an edited rule file was served from the cache"
    assert len(_entries(cache)) == 2 and len(b.rules) == n  # the packaged copy of that rule stays


def test_corrupt_entry_is_rebuilt(cache, monkeypatch):
    want = R.cached_rules()
    (entry,) = _entries(cache)
    entry.write_bytes(entry.read_bytes()[:100])
    monkeypatch.setattr(R, "_CACHE", {})
    _same(R.cached_rules(), want)
    assert entry.stat().st_size > 1000


def test_no_cache_written_where_others_can_write(tmp_path, monkeypatch):
    d = tmp_path / "shared"
    d.mkdir(mode=0o777)
    os.chmod(d, 0o777)
    monkeypatch.setenv("KTRIAGE_CACHE_DIR", str(d))
    monkeypatch.setattr(R, "_CACHE", {})
    assert R.cached_rules().rules and _entries(d) == []


def test_off_and_unwritable(tmp_path, monkeypatch):
    monkeypatch.setenv("KTRIAGE_CACHE_DIR", "off")
    monkeypatch.setattr(R, "_CACHE", {})
    assert R.cached_rules().rules
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("KTRIAGE_CACHE_DIR", str(blocker / "cache"))
    monkeypatch.setattr(R, "_CACHE", {})
    assert R.cached_rules().rules  # the cache cannot be created: the rules are simply parsed


def test_btf_globals_table_from_cache(cache, monkeypatch):
    from ktriage.btf import objects

    monkeypatch.setattr(objects, "_TABLE", None)
    fresh = objects._read_globals()
    assert objects.globals_table() == fresh and len(_entries(cache, "btf-globals")) == 1
    monkeypatch.setattr(objects, "_TABLE", None)
    monkeypatch.setattr(objects, "_read_globals", lambda: pytest.fail("globals.yaml parsed again"))
    assert objects.globals_table() == fresh
    assert any(g.name == "init_task" for g in fresh)
