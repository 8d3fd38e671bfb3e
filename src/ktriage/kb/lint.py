"""`ktriage kb lint`: every rule file valid, and every rule proven by its own examples.

Checks, one line per problem:
  - the file parses and validates against schema/kb-rule-1.json (field named), regexes compile;
  - `id` equals the file name; no two files of one directory share an id;
  - every examples/negative_examples file exists (packaged rules: tests/fixtures/kb/<id>/ of a source
    checkout; user rules: <dir>/<id>/ or <dir>/fixtures/<id>/); skipped with a note when absent;
  - every positive example contains a crash that fully matches the rule ("dead rule" otherwise), and
    no negative example fully matches it (similar is fine: negatives are near misses by design).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ktriage.kb.match import evaluate
from ktriage.kb.rules import (
    Rule,
    RuleError,
    RuleSet,
    configured_dirs,
    dir_rule_files,
    load_rule_file,
    packaged_rule_files,
)
from ktriage.model import Crash


@dataclass
class LintResult:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    files: int = 0


def source_fixtures_dir() -> Path | None:
    """tests/fixtures/kb of the source checkout this package runs from, if any (src layout)."""
    import ktriage

    root = Path(ktriage.__file__).resolve().parent.parent.parent
    d = root / "tests" / "fixtures" / "kb"
    return d if d.is_dir() else None


def read_example(path: Path) -> list[Crash]:
    """The crashes in one example file, read by the same sources `ktriage analyze` uses.

    Raises LookupError with a reason when the input needs a reader that is not available."""
    from ktriage.inputs import InputError, open_input
    from ktriage.model import InputRecord
    from ktriage.pipeline import read_crashes

    rec = InputRecord(str(path))
    inp, stream = open_input(str(path))
    try:
        try:
            return list(read_crashes(inp, stream, rec))
        except ImportError as e:
            raise LookupError(f"no reader for {inp.kind} input yet ({e})") from None
        except InputError as e:
            raise LookupError(str(e)) from None
    finally:
        stream.close()


def _example_dirs(rule: Rule, fixtures: Path | None) -> list[Path]:
    if rule.origin == "packaged":
        return [fixtures / rule.id] if fixtures else []
    base = Path(rule.origin)
    return [p for p in (base / rule.id, base / "fixtures" / rule.id) if p.is_dir()]


def check_examples(rule: Rule, fixtures: Path | None, res: LintResult) -> None:
    dirs = _example_dirs(rule, fixtures)
    pos = [e for e in rule.section("examples") if isinstance(e, dict)]
    neg = [e for e in rule.section("negative_examples") if isinstance(e, dict)]
    if not dirs:
        where = (
            "tests/fixtures/kb (not a source checkout)" if rule.origin == "packaged" else f"{rule.origin}/{rule.id}/"
        )
        if pos or neg:
            res.notes.append(f"{rule.path}: examples not checked: {where} not found")
        return
    if rule.origin == "packaged":
        if not pos:
            res.problems.append(f"{rule.path}: field examples: no positive example (a real crash text it matches)")
        if not neg:
            res.problems.append(f"{rule.path}: field negative_examples: no negative example (a real near miss)")
    for key, entries, positive in (("examples", pos, True), ("negative_examples", neg, False)):
        for i, e in enumerate(entries):
            name = str(e.get("file", ""))
            found = next((d / name for d in dirs if (d / name).is_file()), None)
            if found is None:
                res.problems.append(
                    f"{rule.path}: field {key}[{i}].file: {name} not found in {', '.join(str(d) for d in dirs)}"
                )
                continue
            try:
                crashes = read_example(found)
            except LookupError as err:
                res.notes.append(f"{rule.path}: {key}[{i}] {name} not checked: {err}")
                continue
            except (OSError, ValueError) as err:
                res.problems.append(f"{rule.path}: field {key}[{i}].file: cannot read {found}: {err}")
                continue
            matches = [evaluate(rule, c) for c in crashes]
            full = [m for m in matches if not m.similar]
            if positive and not full:
                if not crashes:
                    why = "the reader finds no crash in it"
                else:
                    best = max(matches, key=lambda m: m.score)
                    why = f"best of {len(crashes)} crash(es) score {best.score:.2f}, differs: {'; '.join(best.missed)}"
                res.problems.append(f"{rule.path}: dead rule: positive example {name} does not match ({why})")
            if not positive and full:
                res.problems.append(
                    f"{rule.path}: negative example {name} matches the rule (score "
                    f"{full[0].score:.2f}: {'; '.join(full[0].matched)}); tighten the signature"
                )


def lint(extra_dirs: Iterable[str] = (), *, check_examples_: bool = True, configured: bool = True) -> LintResult:
    res = LintResult()
    fixtures = source_fixtures_dir()
    if fixtures is None and check_examples_:
        res.notes.append("no tests/fixtures/kb here (installed package?): example files of packaged rules not checked")
    sources: list[tuple[str, list[tuple[str, str]]]] = [("packaged", packaged_rule_files())]
    dirs = (configured_dirs(res.notes) if configured else []) + [("--kb", d) for d in extra_dirs]
    for label, d in dirs:
        if not os.path.isdir(d):
            res.problems.append(f"{d}: knowledge-base directory not found (from {label})")
            continue
        try:
            sources.append((d, dir_rule_files(d)))
        except OSError as e:
            res.problems.append(f"{d}: cannot list directory: {e}")
    for origin, files in sources:
        seen: dict[str, str] = {}
        for path, text in files:
            res.files += 1
            if text.startswith("\0unreadable: "):
                res.problems.append(f"{path}: cannot read: {text[len(chr(0) + 'unreadable: ') :]}")
                continue
            rule, errors = load_rule_file(text, path, origin)
            res.problems += [str(e) for e in errors]
            if rule is None:
                continue
            stem = Path(path).name.rsplit(".", 1)[0]
            if rule.id != stem:
                res.problems.append(str(RuleError(path, f"id {rule.id!r} differs from the file name {stem!r}", "id")))
            if rule.id in seen:
                res.problems.append(str(RuleError(path, f"duplicate id {rule.id!r} (also in {seen[rule.id]})", "id")))
            seen[rule.id] = path
            res.rules.append(rule)
            if check_examples_:
                check_examples(rule, fixtures, res)
    return res


def as_ruleset(res: LintResult) -> RuleSet:
    rs = RuleSet()
    for r in res.rules:
        rs.rules[r.id] = r
    return rs
