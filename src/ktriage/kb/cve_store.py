"""Where the generated CVE tier lives and how it is read without slowing `analyze` down.

The tier ships as `ktriage/kb/data/cve-kb.jsonl.gz` (gzip'd JSON lines, ~2 MB, with the CVE terms of use
beside it); `ktriage kb update --vulns DIR` writes a newer one to `$XDG_DATA_HOME/ktriage/cve-kb.jsonl.gz`
(default `~/.local/share/ktriage/`), which is preferred when its file is newer than the shipped one.

Why an SQLite index: parsing the 14,000 JSON lines costs ~300 ms and unpickling the signatures ~200 ms,
more than the whole analysis of a log. The index (built once per data file into the per-user cache,
`ktriage.diskcache`'s directory) answers "which signatures mention one of these functions" and "this CVE"
in about a millisecond. With no writable cache it is built in memory, only when a lookup needs it.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

DATA_NAME = "cve-kb.jsonl.gz"
TERMS_NAME = "CVE-TERMS-OF-USE.txt"
INDEX_VERSION = 2


def user_data_path() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ktriage" / DATA_NAME


def packaged_data_path() -> Path | None:
    try:
        p = resources.files("ktriage.kb").joinpath("data").joinpath(DATA_NAME)
    except (ModuleNotFoundError, OSError):
        return None
    return p if isinstance(p, Path) and p.is_file() else None


def data_path() -> tuple[Path | None, str]:
    """(the data file to use, where it came from): the user's rebuilt tier when newer than the shipped one."""
    env = os.environ.get("KTRIAGE_CVE_KB")
    if env:
        if env.lower() in ("off", "0", "none", "no"):
            return None, "disabled by KTRIAGE_CVE_KB"
        return Path(env), "KTRIAGE_CVE_KB"
    shipped, user = packaged_data_path(), user_data_path()
    try:
        if user.is_file() and (shipped is None or user.stat().st_mtime >= shipped.stat().st_mtime):
            return user, "user"
    except OSError:
        pass
    return shipped, "packaged"


def read_lines(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    """(header, entries) of a data file; raises ValueError if it is not one."""
    import gzip  # here: a run that finds the index in the cache never decompresses anything

    f = gzip.open(path, "rt", encoding="utf-8")
    first = f.readline()
    try:
        header = json.loads(first)
    except ValueError:
        f.close()
        raise ValueError(f"{path}: not a ktriage CVE knowledge base") from None
    if not isinstance(header, dict) or not str(header.get("format", "")).startswith("ktriage.cve-kb/"):
        f.close()
        raise ValueError(f"{path}: not a ktriage CVE knowledge base")

    def entries() -> Iterator[dict[str, Any]]:
        with f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    return header, entries()


_SCHEMA = """
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT);
CREATE TABLE cve (id TEXT PRIMARY KEY, sort INTEGER, commit12 TEXT, entry TEXT);
CREATE INDEX cve_commit ON cve(commit12);
CREATE TABLE sigfunc (func TEXT, cve TEXT);
"""


def _build(db: sqlite3.Connection, path: Path) -> None:
    header, entries = read_lines(path)
    db.executescript(_SCHEMA)
    db.execute("INSERT INTO meta VALUES ('header', ?)", (json.dumps(header),))
    rows, funcs = [], []
    for n, e in enumerate(entries):
        rows.append((e["id"], n, str(e.get("commit") or "")[:12], json.dumps(e, separators=(",", ":"))))
        names = {s.get("guilty") for s in e.get("sigs") or []} | {
            f for s in e.get("sigs") or [] for f in s.get("frames") or []
        }
        funcs += [(f, e["id"]) for f in names if f]
    db.executemany("INSERT OR REPLACE INTO cve VALUES (?, ?, ?, ?)", rows)
    db.executemany("INSERT INTO sigfunc VALUES (?, ?)", funcs)
    db.execute("CREATE INDEX sigfunc_func ON sigfunc(func)")
    db.commit()


def _index_path(path: Path) -> Path | None:
    from ktriage import diskcache

    d = diskcache.cache_dir()
    if d is None:
        return None
    st = path.stat()
    return d / f"cvekb-{diskcache.key_of('cvekb', INDEX_VERSION, str(path), st.st_size, st.st_mtime_ns)}.sqlite"


def _open_index(path: Path) -> sqlite3.Connection:
    idx = _index_path(path)
    if idx is not None:
        if idx.is_file():
            try:
                db = sqlite3.connect(f"file:{idx}?mode=ro", uri=True)
                db.execute("SELECT v FROM meta WHERE k='header'").fetchone()
                return db
            except sqlite3.Error:
                pass
        try:
            idx.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = idx.with_suffix(f".{os.getpid()}.tmp")
            db = sqlite3.connect(tmp)
            _build(db, path)
            db.close()
            os.replace(tmp, idx)
            for old in idx.parent.glob("cvekb-*.sqlite"):
                if old != idx:
                    old.unlink(missing_ok=True)
            return sqlite3.connect(f"file:{idx}?mode=ro", uri=True)
        except (OSError, sqlite3.Error):
            pass
    db = sqlite3.connect(":memory:")
    _build(db, path)
    return db


@dataclass
class CveStore:
    """The generated tier, opened lazily: nothing is read until a lookup needs it."""

    path: Path | None
    origin: str
    _db: sqlite3.Connection | None = field(default=None, repr=False)
    error: str = ""

    @property
    def available(self) -> bool:
        return self.db is not None

    @property
    def db(self) -> sqlite3.Connection | None:
        if self._db is None and self.path is not None and not self.error:
            try:
                self._db = _open_index(self.path)
            except (OSError, ValueError, KeyError, sqlite3.Error, EOFError) as e:
                self.error = f"CVE knowledge base {self.path} not readable: {e}"
        return self._db

    def header(self) -> dict[str, Any]:
        db = self.db
        if db is None:
            return {}
        row = db.execute("SELECT v FROM meta WHERE k='header'").fetchone()
        return json.loads(row[0]) if row else {}

    def get(self, cve_id: str) -> dict[str, Any] | None:
        db = self.db
        if db is None:
            return None
        row = db.execute("SELECT entry FROM cve WHERE id = ?", (cve_id.upper(),)).fetchone()
        return json.loads(row[0]) if row else None

    def ids_like(self, prefix: str, n: int = 3) -> list[str]:
        db = self.db
        if db is None:
            return []
        rows = db.execute("SELECT id FROM cve WHERE id LIKE ? ORDER BY sort LIMIT ?", (prefix.upper() + "%", n))
        return [r[0] for r in rows]

    def with_functions(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """Entries whose quoted crash names one of these functions (guilty or in its call trace)."""
        db = self.db
        names = sorted(set(names))
        if db is None or not names:
            return []
        marks = ",".join("?" * len(names))
        rows = db.execute(
            f"SELECT entry FROM cve WHERE id IN (SELECT DISTINCT cve FROM sigfunc WHERE func IN ({marks})) ORDER BY sort",
            names,
        )
        return [json.loads(r[0]) for r in rows]

    def with_commits(self, commits: Iterable[str]) -> list[dict[str, Any]]:
        """Entries whose mainline fix is one of these commits (12-hex abbreviations)."""
        db = self.db
        keys = sorted({c[:12] for c in commits if c})
        if db is None or not keys:
            return []
        marks = ",".join("?" * len(keys))
        return [json.loads(r[0]) for r in db.execute(f"SELECT entry FROM cve WHERE commit12 IN ({marks})", keys)]

    def frequencies(self, names: Iterable[str]) -> dict[str, int]:
        """In how many records' quoted crashes each function appears (a plumbing function appears in many)."""
        db = self.db
        names = sorted(set(names))
        if db is None or not names:
            return {}
        marks = ",".join("?" * len(names))
        q = f"SELECT func, COUNT(DISTINCT cve) FROM sigfunc WHERE func IN ({marks}) GROUP BY func"
        return {f: n for f, n in db.execute(q, names)}

    def all(self) -> Iterator[dict[str, Any]]:
        db = self.db
        if db is None:
            return iter(())
        return (json.loads(r[0]) for r in db.execute("SELECT entry FROM cve ORDER BY sort"))


_STORE: CveStore | None = None


def store() -> CveStore:
    """The process-wide store (opened on first lookup)."""
    global _STORE
    path, origin = data_path()
    if _STORE is None or _STORE.path != path:
        _STORE = CveStore(path, origin)
    return _STORE
