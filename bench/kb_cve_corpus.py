"""How the generated CVE tier does on syzkaller's report corpus (../shared/corpora/syzkaller).

For each corpus file with a crash: the first crash ktriage reads, its CVE candidates (kb/cve_match.py)
with the version-window filter off, and whether the best candidate's window holds the crashed kernel
(at/after where the bug came in, before the fix on its branch). Prints the counts and a sample to read
by hand (every Nth title with a candidate).

    PYTHONPATH=src python bench/kb_cve_corpus.py [CORPUS_DIR] [--sample 20]
"""

from __future__ import annotations

import argparse
import os  # noqa: F401
import sys
from pathlib import Path

from ktriage.kb.cve_match import match_cve
from ktriage.kb.cve_store import store
from ktriage.logs import parse_log_text

HERE = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus", nargs="?", default=str(HERE.parent / "shared" / "corpora" / "syzkaller"))
    ap.add_argument("--sample", type=int, default=20)
    a = ap.parse_args()
    st = store()
    files = sorted(Path(a.corpus).iterdir(), key=lambda p: p.name)
    n_crash = n_cand = n_in = n_out = n_unknown = 0
    rows = []
    for p in files:
        raw = p.read_bytes().decode("utf-8", "replace")
        head, _, log = raw.partition("\n\n")
        if "TITLE:" not in head:
            continue
        crashes = parse_log_text(log, str(p))
        if not crashes:
            continue
        n_crash += 1
        c = crashes[0]
        cands = match_cve(c, st=st, keep_outside_window=True, limit=1)
        if not cands:
            continue
        n_cand += 1
        best = cands[0]
        w = best.verdict
        if w.answer == "no":
            n_in += 1
            mark = "in-window"
        elif w.answer == "yes" or w.affected is False:
            n_out += 1
            mark = "OUTSIDE"
        else:
            n_unknown += 1
            mark = "unknown"
        rows.append((p.name, c.title, c.kernel.release, best, mark))
    print(f"corpus files with a crash read: {n_crash}")
    print(f"  with a CVE candidate: {n_cand}")
    print(
        f"  best candidate's window holds the kernel: {n_in}; outside it: {n_out}; kernel version unknown: {n_unknown}"
    )
    step = max(1, len(rows) // a.sample) if rows else 1
    print(f"\nsample (every {step}th):")
    for name, title, rel, best, mark in rows[::step][: a.sample]:
        print(f"- {name}: {title} [{rel}]")
        print(f"    {best.cve} {best.subject} (score {best.score:.2f}, {mark}); quoted: {best.title}")
        print(f"    why: {'; '.join(best.why)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
