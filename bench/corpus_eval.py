#!/usr/bin/env python3
"""Evaluate ktriage's log reader on syzkaller's report corpus (../shared/corpora/syzkaller).

Each corpus file: header lines (TITLE:, ALT:, TYPE:, FRAME:, CORRUPTED:), a blank line, then the
raw console log. ktriage reads the log; its first crash is compared with the header.

    python bench/corpus_eval.py [CORPUS_DIR] [--misses] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from pathlib import Path

from ktriage.logs import parse_log_text

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
    "WARNING": {"warning", "refcount", "list-corruption"},
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
        want = hdr.get("TITLE", [None])[0]
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
            if c.guilty_frame == hdr["FRAME"][0]:
                stats["frame_agree"] += 1
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
        "corrupted_agree_pct": round(100 * stats["corrupted_agree"] / pos, 1),
        "crashes_in_negative_files": stats["negative_with_crash"],
        "positive_files_with_nothing_found": stats["nothing_found"],
    }
    return {"summary": summary, "misses": misses}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora" / "syzkaller"
    ap.add_argument("corpus", nargs="?", default=os.environ.get("KTRIAGE_CORPUS", str(default)))
    ap.add_argument("--misses", action="store_true", help="list every disagreement")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
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
