"""The kernel CNA's CVE records (vulns.git) -> the generated tier of the knowledge base.

Why generated: the hand-written rules are 38 verified bugs; the kernel's CVE team publishes a record for
most fixed bugs (14,000+), each with the fix commit per stable branch and the first fixed release of each
branch, and about a quarter quote the crash the bug produced. This module reads those records (a
`vulns.git` checkout, or a `.tar.xz`/`.tar.gz` of one) and keeps, per CVE, what triage needs:

  id, subject, mainline fix commit and release, the introducing release(s), the fixed release and commit
  of each stable branch, the branches where the bug came in by a backport (`backported`: fixed later on that
  branch; `unfixed`: never fixed there), and the
  signature of the crash the description quotes (read with ktriage's own log reader, `ktriage.logs`).

Record layout (CVE JSON 5, `containers.cna`): `affected[]` holds a `defaultStatus: unaffected` block of git
ranges (`version` = introducing commit, `lessThan` = fix commit) and a `defaultStatus: affected` block of
releases: `{version: "4.14.282", lessThanOrEqual: "4.14.*", status: unaffected}` is the first fixed
release of a stable branch, `versionType: original_commit_for_fix` the first mainline release with the
fix, `{version: "4.7", status: affected}` where the bug came in. The `.dyad` file beside a record maps
each fixed release to its commit (`intro_release:intro_commit:fixed_release:fix_commit`, `0` = none).

A record that cannot be read (malformed JSON, a missing field) is skipped and counted with its reason.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ktriage.kb.versions import parse_kver

FORMAT = "ktriage.cve-kb/1"
MAX_RECORD_BYTES = 4 << 20  # one CVE JSON record; the largest published is ~200 KB
MAX_FRAMES = 16  # call-trace functions kept per signature
MAX_SIGNATURES = 2  # crash reports kept per record (a description quoting several shows the same bug)
_CVE_PATH = re.compile(r"(?:^|/)cve/published/\d{4}/(CVE-\d{4}-\d+)\.(json|dyad|sha1)$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
COMMIT_LEN = 12  # commit ids kept as the kernel's usual 12-hex abbreviation


@dataclass
class ImportResult:
    entries: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    skipped_examples: dict[str, str] = field(default_factory=dict)  # reason -> first CVE/file
    source: str = ""
    source_commit: str = ""

    def counts(self) -> dict[str, int]:
        e = self.entries
        return {
            "imported": len(e),
            "with_signature": sum(1 for x in e if x.get("sigs")),
            "with_versions": sum(1 for x in e if usable_versions(x)),
            "skipped": sum(self.skipped.values()),
        }


def usable_versions(entry: dict[str, Any]) -> bool:
    """A version answer is possible: a mainline fix release or at least one stable fixed release."""
    return bool(entry.get("mainline") or entry.get("stable"))


class RecordError(ValueError):
    """One record that cannot be imported, with the reason (counted, never raised to the user)."""


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            raise RecordError("missing field " + ".".join(keys))
        d = d[k]
    return d


def _short(commit: str) -> str:
    return commit[:COMMIT_LEN] if _SHA.match(commit) else ""


def parse_record(raw: bytes | str, dyad: str | None = None) -> dict[str, Any]:
    """One CVE JSON 5 record (+ its .dyad text) -> a compact entry. Raises RecordError."""
    try:
        d = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise RecordError(f"malformed JSON ({type(e).__name__})") from None
    cve_id = _get(d, "cveMetadata", "cveId")
    if not isinstance(cve_id, str) or not cve_id.startswith("CVE-"):
        raise RecordError("bad cveMetadata.cveId")
    cna = _get(d, "containers", "cna")
    affected = _get(d, "containers", "cna", "affected")
    if not isinstance(affected, list):
        raise RecordError("containers.cna.affected is not a list")
    descs = cna.get("descriptions") or []
    desc = str(
        next((x.get("value") for x in descs if isinstance(x, dict) and x.get("lang", "en").startswith("en")), "")
    )
    subject = cna.get("title") or (desc.split("\n\n")[1] if desc.count("\n\n") else "")
    if not isinstance(subject, str) or not subject:
        raise RecordError("missing field containers.cna.title")

    entry: dict[str, Any] = {"id": cve_id, "subject": subject.strip()}
    introduced: set[str] = set()
    stable: dict[str, list[str]] = {}  # branch "5.10" -> [release, commit]
    unfixed: dict[str, str] = {}  # branch -> release where a backport brought the bug in, never fixed
    backported: dict[str, str] = {}  # branch -> release where a backport brought the bug in, fixed later
    fix_commits: list[str] = []
    for block in affected:
        if not isinstance(block, dict):
            continue
        for v in block.get("versions") or []:
            if not isinstance(v, dict):
                continue
            ver, st, vt = str(v.get("version", "")), v.get("status"), v.get("versionType")
            if block.get("defaultStatus") == "unaffected":
                if vt == "git" and v.get("lessThan"):
                    fix_commits.append(str(v["lessThan"]))
                elif vt == "semver" and st == "affected" and v.get("lessThan"):
                    # a backport brought the bug into a stable branch: {version: 5.15.168, lessThan: 5.15.191}
                    # is fixed there later; {version: 4.14.189, lessThan: 4.15} never was
                    k, end = parse_kver(ver), parse_kver(str(v["lessThan"]))
                    if k is not None and k.patch:
                        br = f"{k.major}.{k.minor}"
                        if end is not None and end.branch == k.branch:
                            backported[br] = ver
                        else:
                            unfixed[br] = ver
                continue
            if vt == "original_commit_for_fix":
                entry["mainline"] = ver
            elif st == "affected" and "lessThan" not in v and "lessThanOrEqual" not in v:
                if parse_kver(ver) is not None:
                    introduced.add(ver)
            elif st == "unaffected" and str(v.get("lessThanOrEqual", "")).endswith(".*"):
                k = parse_kver(ver)
                if k is not None:
                    stable[f"{k.major}.{k.minor}"] = [ver, ""]
    for line in (dyad or "").splitlines():
        parts = line.strip().split(":")
        if line.startswith("#") or len(parts) != 4:
            continue
        intro_rel, _intro_commit, fix_rel, fix_commit = parts
        k = parse_kver(fix_rel)
        if k is None:
            continue
        br = f"{k.major}.{k.minor}"
        if br in stable and stable[br][0] == fix_rel:
            stable[br][1] = _short(fix_commit)
        elif fix_rel == entry.get("mainline"):
            entry["commit"] = _short(fix_commit)
    if "commit" not in entry and fix_commits:
        entry["commit"] = _short(fix_commits[-1])  # mainline comes last in the git block
    ml = parse_kver(entry.get("mainline"))
    if ml is not None:
        stable.pop(f"{ml.major}.{ml.minor}", None)
    if introduced:
        entry["introduced"] = sorted(introduced, key=lambda s: parse_kver(s) or parse_kver("0.0"))  # type: ignore[arg-type,return-value]
    if stable:
        entry["stable"] = dict(sorted(stable.items(), key=lambda kv: parse_kver(kv[0]) or parse_kver("0.0")))  # type: ignore[arg-type,return-value]
    if unfixed:
        entry["unfixed"] = unfixed
    if backported:
        entry["backported"] = backported
    files = [f for b in affected if isinstance(b, dict) for f in b.get("programFiles") or [] if isinstance(f, str)]
    if files:
        entry["files"] = sorted(set(files))[:8]
    sigs = signatures(desc or "", cve_id)
    if sigs:
        entry["sigs"] = sigs
    return entry


def signatures(description: str, where: str = "-") -> list[dict[str, Any]]:
    """The crash reports a description quotes, read by ktriage's log reader: kind, title (syzkaller's
    convention, as ktriage makes it), guilty function, call-trace functions (generic ones dropped)."""
    from ktriage.logs import parse_log_text
    from ktriage.logs.frames import normalize
    from ktriage.logs.guilty import is_generic

    out: list[dict[str, Any]] = []
    try:
        crashes = parse_log_text(description, where)
    except Exception:  # noqa: BLE001 - a quoted report the reader chokes on is no signature, not a failed import
        return out
    for c in crashes:
        if c.kind == "unknown" and not c.frames:
            continue
        names: list[str] = []
        if c.ip is not None and c.ip.symbol:
            names.append(normalize(c.ip.symbol))
        for f in c.frames:
            if f.symbol:
                n = normalize(f.symbol)
                if n not in names and not is_generic(n):
                    names.append(n)
        sig: dict[str, Any] = {"kind": c.kind, "title": c.title}
        if c.guilty_frame:
            sig["guilty"] = normalize(c.guilty_frame)
        if names:
            sig["frames"] = names[:MAX_FRAMES]
        if c.kernel.release:
            sig["release"] = c.kernel.release
        if sig.get("guilty") or sig.get("frames"):
            if not any(s["title"] == sig["title"] for s in out):
                out.append(sig)
        if len(out) >= MAX_SIGNATURES:
            break
    return out


# --------------------------------------------------------------------------------- sources


def _iter_dir(root: Path) -> Iterator[tuple[str, bytes]]:
    pub = root / "cve" / "published"
    if not pub.is_dir():
        raise FileNotFoundError(f"{root}: no cve/published directory (not a vulns.git checkout)")
    for year in sorted(pub.iterdir()):
        if not year.is_dir():
            continue
        for p in sorted(year.iterdir()):
            if _CVE_PATH.search(p.as_posix()):
                try:
                    if p.stat().st_size > MAX_RECORD_BYTES:
                        yield p.as_posix(), b"\0too large"
                        continue
                    yield p.as_posix(), p.read_bytes()
                except OSError as e:
                    yield p.as_posix(), f"\0unreadable: {e}".encode()


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        tf = tarfile.open(path, "r|*")
    except (tarfile.TarError, OSError) as e:
        raise FileNotFoundError(f"{path}: not a readable tar archive ({e})") from None
    with tf:
        for m in tf:
            if not m.isfile() or not _CVE_PATH.search(m.name):
                continue
            if m.size > MAX_RECORD_BYTES:
                yield m.name, b"\0too large"
                continue
            f = tf.extractfile(m)
            yield m.name, f.read() if f is not None else b"\0unreadable"


def _git_head(root: Path) -> str:
    head = root / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            return (root / ".git" / ref[5:]).read_text().strip()
        return ref
    except OSError:
        return ""


def import_records(path: str) -> ImportResult:
    """Read every published record under `path` (checkout dir or tarball). Raises FileNotFoundError for a
    path that holds no records at all (the CLI prints it on one line)."""
    p = Path(path)
    res = ImportResult(source=os.path.abspath(path))
    if p.is_dir():
        files = _iter_dir(p)
        res.source_commit = _git_head(p)
    elif p.is_file():
        files = _iter_tar(p)
        m = re.search(r"([0-9a-f]{12,40})\.tar", p.name)
        res.source_commit = m.group(1) if m else ""
    else:
        raise FileNotFoundError(f"{path}: no such file or directory")
    records: dict[str, bytes] = {}
    dyads: dict[str, str] = {}
    for name, data in files:
        m = _CVE_PATH.search(name)
        if m is None:
            continue
        cve, ext = m.group(1), m.group(2)
        if data.startswith(b"\0"):
            _skip(res, data[1:].decode(errors="replace").split(":")[0], name)
            continue
        if ext == "json":
            records[cve] = data
        elif ext == "dyad":
            dyads[cve] = data.decode("utf-8", "replace")
    if not records:
        raise FileNotFoundError(f"{path}: no published CVE records (cve/published/YEAR/CVE-*.json) found")
    for cve in sorted(records, key=_cve_key):
        try:
            res.entries.append(parse_record(records[cve], dyads.get(cve)))
        except RecordError as e:
            _skip(res, str(e), cve)
    return res


def _skip(res: ImportResult, reason: str, where: str) -> None:
    res.skipped[reason] += 1
    res.skipped_examples.setdefault(reason, os.path.basename(where))


def _cve_key(cve: str) -> tuple[int, int]:
    _, y, n = cve.split("-")
    return int(y), int(n)


def branches_of(entries: list[dict[str, Any]]) -> list[str]:
    """Every stable branch that received a fix in some record: the branches a bug can be left out of."""
    seen = {br for e in entries for br in (e.get("stable") or {})}
    return sorted(seen, key=lambda b: parse_kver(b) or parse_kver("0.0"))  # type: ignore[arg-type,return-value]


def write_db(res: ImportResult, out: str) -> dict[str, Any]:
    """Write the tier as gzip'd JSON lines: a header line (format, counts, source, branches), then one
    entry per line. Written to a temporary name and renamed, so a reader never sees half a file."""
    header = {
        "format": FORMAT,
        "source": res.source_commit or os.path.basename(res.source),
        "counts": res.counts(),
        "skipped": dict(res.skipped),
        "branches": branches_of(res.entries),
    }
    os.makedirs(os.path.dirname(os.path.abspath(out)) or ".", exist_ok=True)
    tmp = out + ".tmp"
    with gzip.GzipFile(tmp, "wb", compresslevel=9, mtime=0) as f:
        f.write((json.dumps(header, separators=(",", ":")) + "\n").encode())
        for e in res.entries:
            f.write((json.dumps(e, separators=(",", ":"), ensure_ascii=False) + "\n").encode())
    os.replace(tmp, out)
    return header
