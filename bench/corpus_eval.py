#!/usr/bin/env python3
"""Evaluate ktriage's log reader on syzkaller's report corpus (../shared/corpora/syzkaller) and on
the corpus of real production/bug-tracker/mailing-list texts (tests/corpora/real).

syzkaller: each corpus file holds header lines (TITLE:, ALT:, TYPE:, FRAME:, CORRUPTED:), a blank
line, then the raw console log. ktriage reads the log; its first crash is compared with the header:
title, kind, guilty frame (FRAME:, and the function a title ends with), corrupted. `--misses` lists each
disagreement with its cause.

real: tests/corpora/real/index.yaml lists every text with the answers checked by hand (kind, guilty
function, arch, release, task, fault address, frames, whether it is a crash at all); the first crash
is compared field by field and the result is given per class of text.

    python bench/corpus_eval.py [CORPUS_DIR] [--misses] [--json] [--real [INDEX]]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

from ktriage.logs import parse_log_text
from ktriage.logs.frames import normalize
from ktriage.model import Crash

# syzkaller's crash types -> ktriage kinds (several syzkaller types map to one kind)
TYPE_TO_KIND = {
    "NULL-POINTER-DEREFERENCE": {"null-deref"},
    "KASAN-READ": {"kasan"},
    "KASAN-WRITE": {"kasan"},
    "KASAN-USE-AFTER-FREE-READ": {"kasan"},
    "KASAN-USE-AFTER-FREE-WRITE": {"kasan"},
    "KASAN-INVALID-FREE": {"kasan"},
    "KFENCE-READ": {"kfence"},
    "KFENCE-WRITE": {"kfence"},
    "KFENCE-USE-AFTER-FREE-READ": {"kfence"},
    "KFENCE-INVALID-FREE": {"kfence"},
    "KFENCE-MEMORY-CORRUPTION": {"kfence"},
    "KMSAN-UNINIT-VALUE": {"kmsan"},
    "KMSAN-INFO-LEAK": {"kmsan"},
    "KCSAN-DATARACE": {"kcsan"},
    "KCSAN-ASSERT": {"kcsan"},
    "UBSAN": {"ubsan"},
    "MEMORY_SAFETY_UBSAN": {"ubsan"},
    "LOCKDEP": {"lockdep"},
    "ATOMIC_SLEEP": {"atomic-sleep"},
    "HANG": {"hung-task", "rcu-stall", "soft-lockup", "hard-lockup"},
    "LEAK": {"memory-leak"},
    # ktriage's kinds are finer than syzkaller's types: a WARN from mm/usercopy.c is a usercopy violation
    # (as the BUG form already is), a `Kernel panic - not syncing: stack-protector:` a stack-protector crash
    "WARNING": {"warning", "refcount", "list-corruption", "usercopy"},
    "REFCOUNT_WARNING": {"refcount"},
    "BUG": {"bug", "list-corruption", "invalid-opcode", "bad-page", "slab-corruption", "usercopy"},
    "MEMORY_SAFETY_BUG": {
        "gpf",
        "paging-request",
        "null-deref",
        "stack-guard",
        "list-corruption",
        "stack-protector",
        "double-fault",
        "bug",
        "usercopy",
        "kasan",
    },
    "DoS": {
        "panic",
        "stack-protector",
        "soft-lockup",
        "gpf",
        "paging-request",
        "divide-error",
        "bug",
        "stack-guard",
        "oom",
        "invalid-opcode",
        "double-fault",
        "unknown",
        "hung-task",
        "null-deref",
    },
}


def read_case(path: Path) -> tuple[dict[str, list[str]], str]:
    data = path.read_bytes().decode("utf-8", "replace")
    head, _, log = data.partition("\n\n")
    hdr: dict[str, list[str]] = {}
    for line in head.splitlines():
        if ":" in line and not line.startswith("#"):
            k, _, v = line.partition(":")
            hdr.setdefault(k.strip(), []).append(v.strip())
    return hdr, log


def evaluate(corpus: Path) -> dict:
    files = sorted(p for p in corpus.iterdir() if p.is_file())
    stats = Counter()
    misses: list[dict] = []
    for p in files:
        hdr, log = read_case(p)
        crashes = parse_log_text(log, str(p))
        # an empty `TITLE:` says syzkaller finds no crash in the log (a user-space segfault), like a missing one
        want = hdr.get("TITLE", [None])[0] or None
        if want is None:
            stats["negative"] += 1
            if crashes:
                stats["negative_with_crash"] += 1
                misses.append({"file": p.name, "cause": "crash found in negative", "got": crashes[0].title})
            continue
        stats["positive"] += 1
        if not crashes:
            stats["nothing_found"] += 1
            misses.append({"file": p.name, "cause": "nothing found", "want": want})
            continue
        c = crashes[0]
        alts = [want] + hdr.get("ALT", [])
        if c.title == want:
            stats["title_exact"] += 1
        else:
            misses.append({"file": p.name, "cause": "title", "want": want, "got": c.title})
        if c.title in alts:
            stats["title_or_alt"] += 1
        if "TYPE" in hdr:
            stats["typed"] += 1
            if c.kind in TYPE_TO_KIND.get(hdr["TYPE"][0], set()):
                stats["kind_agree"] += 1
            else:
                misses.append({"file": p.name, "cause": "kind", "want": hdr["TYPE"][0], "got": c.kind})
        if "FRAME" in hdr:
            stats["framed"] += 1
            # syzkaller writes `corrupted` where no frame can be named
            if c.guilty_frame == hdr["FRAME"][0] or (c.guilty_frame is None and hdr["FRAME"][0] == "corrupted"):
                stats["frame_agree"] += 1
            else:
                misses.append({"file": p.name, "cause": "frame", "want": hdr["FRAME"][0], "got": c.guilty_frame})
        # the guilty frame against the function syzkaller's title ends with (`... in <func>`): 14 files carry a
        # FRAME: line, 300+ titles name one. ktriage names a frame under a `corrupted` title where the IP or the
        # header gives one (and says so in a note); those count as disagreements here.
        tm = re.search(r" in (\S+)$", want)
        if tm and " " not in tm.group(1):
            stats["title_func"] += 1
            twant = tm.group(1)
            if c.guilty_frame == twant or (c.guilty_frame is None and twant == "corrupted"):
                stats["title_func_agree"] += 1
            else:
                misses.append({"file": p.name, "cause": "title function", "want": twant, "got": c.guilty_frame})
        want_corrupt = hdr.get("CORRUPTED", ["N"])[0] == "Y"
        stats["corrupted_agree"] += int(c.corrupted == want_corrupt)
    pos = max(stats["positive"], 1)
    summary = {
        "files": len(files),
        "positive": stats["positive"],
        "negative": stats["negative"],
        "title_exact_pct": round(100 * stats["title_exact"] / pos, 1),
        "title_or_alt_pct": round(100 * stats["title_or_alt"] / pos, 1),
        "kind_agree_pct": round(100 * stats["kind_agree"] / max(stats["typed"], 1), 1),
        "frame_agree_pct": round(100 * stats["frame_agree"] / max(stats["framed"], 1), 1),
        "title_func_agree_pct": round(100 * stats["title_func_agree"] / max(stats["title_func"], 1), 1),
        "corrupted_agree_pct": round(100 * stats["corrupted_agree"] / pos, 1),
        "crashes_in_negative_files": stats["negative_with_crash"],
        "positive_files_with_nothing_found": stats["nothing_found"],
    }
    return {"summary": summary, "misses": misses}


# --- the real corpus -----------------------------------------------------------------------------

REAL_INDEX = Path(__file__).resolve().parent.parent / "tests" / "corpora" / "real" / "index.yaml"
REAL_FIELDS = ("found", "false_pos", "kind", "guilty", "frames", "arch", "release", "task", "fault", "count")


def load_real_index(index: Path = REAL_INDEX) -> list[dict]:
    import yaml

    data = yaml.safe_load(index.read_text(encoding="utf-8"))
    return list(data["files"])


def _one_of(want: object, got: object) -> bool:
    wants = want if isinstance(want, list) else [want]
    return got in wants


def check_real(crashes: list[Crash], expect: dict) -> dict[str, bool]:
    """Field -> agrees, for every field the index entry checks (absent keys are not checked).
    `null` in the index means the text does not hold the value: the reader must leave it empty."""
    out: dict[str, bool] = {}
    if not expect.get("crash", True):
        out["false_pos"] = not crashes
        return out
    out["found"] = bool(crashes)
    main = expect.get("main", 0)  # the crash the answers are about (a log may begin with another's cut tail)
    c = crashes[main] if len(crashes) > main else None
    if "crashes" in expect:
        out["count"] = len(crashes) == expect["crashes"]
    if "first_line_min" in expect:
        out["found"] = out["found"] and c is not None and c.source.first_line >= expect["first_line_min"]
    if "kind" in expect:
        out["kind"] = c is not None and _one_of(expect["kind"], c.kind)
    if "guilty" in expect:
        got = normalize(c.guilty_frame) if c is not None and c.guilty_frame else None
        want = expect["guilty"]
        wants = [normalize(w) if w else None for w in (want if isinstance(want, list) else [want])]
        out["guilty"] = c is not None and got in wants
    if "frames_min" in expect:
        out["frames"] = c is not None and sum(1 for f in c.frames if f.symbol) >= expect["frames_min"]
    if "arch" in expect:
        out["arch"] = c is not None and _one_of(expect["arch"], c.arch)
    if "release" in expect:
        out["release"] = c is not None and _one_of(expect["release"], c.kernel.release)
    if "comm" in expect or "pid" in expect:
        ok = c is not None
        if ok and "comm" in expect:
            ok = _one_of(expect["comm"], c.task.comm)
        if ok and "pid" in expect:
            ok = _one_of(expect["pid"], c.task.pid)
        out["task"] = ok
    if "fault" in expect:
        want_fault = int(expect["fault"], 16) if expect["fault"] is not None else None
        out["fault"] = c is not None and c.fault_address == want_fault
    return out


def evaluate_real(index: Path = REAL_INDEX) -> dict:
    """Per class and per field: how many checked values the reader got right."""
    base = index.parent
    per_class: dict[str, Counter] = {}
    misses: list[dict] = []
    for entry in load_real_index(index):
        path = base / entry["file"]
        cls = entry["file"].split("/", 1)[0]
        crashes = parse_log_text(path.read_bytes().decode("utf-8", "replace"), str(path))
        res = check_real(crashes, entry.get("expect", {}))
        st = per_class.setdefault(cls, Counter())
        st["files"] += 1
        st["all_right"] += all(res.values())
        for field, ok in res.items():
            st[field + "_checked"] += 1
            st[field + "_ok"] += ok
            if not ok:
                c = crashes[0] if crashes else None
                got = {
                    "found": len(crashes),
                    "false_pos": c.title if c else None,
                    "count": len(crashes),
                    "kind": c and c.kind,
                    "guilty": c and c.guilty_frame,
                    "frames": c and len(c.frames),
                    "arch": c and c.arch,
                    "release": c and c.kernel.release,
                    "task": c and (c.task.comm, c.task.pid),
                    "fault": c and c.fault_address is not None and hex(c.fault_address),
                }.get(field)
                misses.append({"file": entry["file"], "field": field, "got": got})
    total: Counter = Counter()
    for st in per_class.values():
        total.update(st)
    per_class["ALL"] = total
    table = {
        cls: {"files": st["files"], "all_right": st["all_right"]}
        | {f: f"{st[f + '_ok']}/{st[f + '_checked']}" for f in REAL_FIELDS if st[f + "_checked"]}
        for cls, st in sorted(per_class.items())
    }
    pct = {f: round(100 * total[f + "_ok"] / total[f + "_checked"], 1) for f in REAL_FIELDS if total[f + "_checked"]}
    return {"classes": table, "field_pct": pct, "misses": misses}


def print_real(res: dict, misses: bool) -> None:
    cols = ("files", "all_right") + REAL_FIELDS
    print(f"{'class':<14}" + " ".join(f"{c:>9}" for c in cols))
    for cls, row in res["classes"].items():
        print(f"{cls:<14}" + " ".join(f"{str(row.get(c, '-')):>9}" for c in cols))
    print("field %: " + ", ".join(f"{k} {v}" for k, v in res["field_pct"].items()))
    if misses:
        for m in res["misses"]:
            print(json.dumps(m, ensure_ascii=False, default=str))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora" / "syzkaller"
    ap.add_argument("corpus", nargs="?", default=os.environ.get("KTRIAGE_CORPUS", str(default)))
    ap.add_argument("--misses", action="store_true", help="list every disagreement")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--real", nargs="?", const=str(REAL_INDEX), help="evaluate only the real corpus (its index.yaml)")
    a = ap.parse_args()
    if a.real:
        real = evaluate_real(Path(a.real))
        if a.json:
            json.dump(real if a.misses else {k: v for k, v in real.items() if k != "misses"}, sys.stdout, indent=2)
            print()
        else:
            print_real(real, a.misses)
        return 0
    res = evaluate(Path(a.corpus))
    if a.json:
        json.dump(res if a.misses else res["summary"], sys.stdout, indent=2)
        print()
        return 0
    for k, v in res["summary"].items():
        print(f"{k:36} {v}")
    if a.misses:
        for m in res["misses"]:
            print(json.dumps(m, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
