"""Loading and validating known-bug rules (one YAML file per bug, format in FORMAT.md).

Rules come from, in order of precedence (a later source overrides an earlier one with the same id):
  1. the packaged rules, `ktriage/kb/bugs/*.yaml` (package data, read with importlib.resources)
  2. `kb_dirs = [...]` in `$XDG_CONFIG_HOME/ktriage/config.toml` (default `~/.config/ktriage/config.toml`)
  3. `KTRIAGE_KB_PATH` (colon-separated directories)
  4. `--kb DIR` options, in the order given
A bad rule file never raises: it becomes a one-line error naming the file and the field.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ktriage.kb.versions import KVer, parse_kver

RULE_SUFFIXES = (".yaml", ".yml", ".toml")
MAX_RULE_BYTES = 256 * 1024  # a rule is a page of YAML; the largest packaged one is ~6 KB
ENV_PATH = "KTRIAGE_KB_PATH"


class RuleError(Exception):
    """One problem with one rule file, printable on one line."""

    def __init__(self, path: str, message: str, field: str | None = None):
        self.path, self.field, self.message = path, field, message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" field {self.field}:" if self.field else ""
        return f"{self.path}:{where} {self.message}"


@dataclass
class FrameSpec:
    function: str
    module: str | None = None

    def __str__(self) -> str:
        return self.function + (f" [{self.module}]" if self.module else "")


@dataclass
class Rule:
    """A validated rule: the YAML data as written plus the compiled signature."""

    id: str
    data: dict[str, Any]
    path: str
    origin: str  # "packaged" or the directory it came from
    kinds: tuple[str, ...] = ()
    guilty: tuple[str, ...] = ()
    frames: tuple[FrameSpec, ...] = ()
    any_frames: tuple[str, ...] = ()
    events: tuple[Any, ...] = ()  # RE2 programs (see _rule_pattern)
    title_re: Any = None  # an RE2 program or None
    introduced: KVer | None = None
    fixed: KVer | None = None
    overrides: str | None = None  # path of the rule this one replaced
    forms: tuple[tuple[str, Rule], ...] = ()  # (name, the rule with that form's signature): other forms of the bug

    @property
    def title(self) -> str:
        return str(self.data.get("title", ""))

    @property
    def status(self) -> str:
        return str(self.data.get("status", ""))

    @property
    def fix(self) -> dict[str, Any]:
        return self.data.get("fix") or {}

    def section(self, name: str) -> list[Any]:
        return list(self.data.get(name) or [])


@dataclass
class RuleSet:
    rules: dict[str, Rule] = field(default_factory=dict)
    errors: list[RuleError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dirs: list[tuple[str, str]] = field(default_factory=list)  # (origin label, path)

    def __iter__(self) -> Iterator[Rule]:
        return iter(sorted(self.rules.values(), key=lambda r: r.id))

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, rule_id: str) -> Rule | None:
        return self.rules.get(rule_id)


# --------------------------------------------------------------------------------- schema

_SCHEMA: dict[str, Any] | None = None


def schema() -> dict[str, Any]:
    global _SCHEMA
    if _SCHEMA is None:
        text = resources.files("ktriage").joinpath("schema/kb-rule-1.json").read_text(encoding="utf-8")
        _SCHEMA = json.loads(text)
    return _SCHEMA


def _field_path(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _describe(err: Any) -> tuple[str, str]:  # err: jsonschema.ValidationError
    """(field, message) for a schema error, choosing the most specific cause of oneOf/anyOf failures."""
    if err.context:
        deepest = max(err.context, key=lambda e: (len(e.absolute_path), e.validator != "type"))
        if len(deepest.absolute_path) > len(err.absolute_path) or err.validator in ("oneOf",):
            if err.validator == "oneOf" and deepest.validator == "type" and len(err.context) > 1:
                others = [e for e in err.context if e.validator != "type"]
                if others:
                    deepest = others[0]
            err = deepest
    fld = _field_path(err.absolute_path)
    inst = err.instance
    if err.validator == "pattern":
        msg = f"{inst!r} is not valid (expected pattern {err.validator_value})"
    elif err.validator == "enum":
        allowed = ", ".join(map(str, err.validator_value))
        if len(allowed) > 120:
            allowed = allowed[:117] + "..."
        msg = f"{inst!r} is not one of: {allowed}"
    elif err.validator == "additionalProperties":
        msg = err.message.replace("Additional properties are not allowed", "unknown key(s)")
    elif err.validator == "type" and isinstance(inst, (int, float)) and not isinstance(inst, bool):
        msg = f'{inst!r} is a number, expected {err.validator_value} (quote it in YAML: "{inst}")'
    else:
        msg = err.message
    if len(msg) > 240:
        msg = msg[:237] + "..."
    return fld, msg


_JSON_TYPES: dict[str, Any] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
}
_ANNOTATIONS = {"$schema", "$id", "$comment", "title", "description", "examples", "default", "$defs"}


def _plain_eq(a: Any, b: Any) -> bool:
    """JSON equality for scalars (True != 1); anything else counts as unsure (-> not equal)."""
    ok = (str, int, float, bool, type(None))
    return type(a) is type(b) and isinstance(a, ok) and a == b


def _surely_valid(v: Any, s: Any, root: dict[str, Any]) -> bool:
    """True only when `v` certainly validates against schema `s` (the keywords kb-rule-1.json uses).

    Sound, not complete: an unknown keyword, a non-local $ref or any doubt answers False and the
    caller runs jsonschema, which stays the reference (and the only source of error messages).
    """
    if s is True or s == {}:
        return True
    if not isinstance(s, dict):
        return False
    for k, x in s.items():
        if k in _ANNOTATIONS:
            continue
        if k == "$ref":
            if not (isinstance(x, str) and x.startswith("#/")):
                return False
            t: Any = root
            for part in x[2:].split("/"):
                if not isinstance(t, dict) or part not in t:
                    return False
                t = t[part]
            if not _surely_valid(v, t, root):
                return False
        elif k == "type":
            names = x if isinstance(x, list) else [x]
            if not any(n in _JSON_TYPES and _JSON_TYPES[n](v) for n in names):
                return False
        elif k == "const":
            if not _plain_eq(v, x):
                return False
        elif k == "enum":
            if not any(_plain_eq(v, e) for e in x):
                return False
        elif k == "pattern":
            if isinstance(v, str) and not re.search(x, v):
                return False
        elif k == "minLength":
            if isinstance(v, str) and len(v) < x:
                return False
        elif k == "minItems":
            if isinstance(v, list) and len(v) < x:
                return False
        elif k == "items":
            if isinstance(v, list) and not all(_surely_valid(i, x, root) for i in v):
                return False
        elif k == "required":
            if isinstance(v, dict) and not all(r in v for r in x):
                return False
        elif k == "properties":
            if isinstance(v, dict) and not all(_surely_valid(v[p], ps, root) for p, ps in x.items() if p in v):
                return False
        elif k == "additionalProperties":
            if isinstance(v, dict):
                if "patternProperties" in s:
                    return False
                extra = [p for p in v if p not in (s.get("properties") or {})]
                if not all(_surely_valid(v[p], x, root) for p in extra) if x is not False else extra:
                    return False
        elif k == "allOf":
            if not all(_surely_valid(v, sub, root) for sub in x):
                return False
        elif k == "anyOf":
            if not any(_surely_valid(v, sub, root) for sub in x):
                return False
        elif k == "oneOf":
            # exactly one must match: a branch "surely" matching is known, a non-match is only a doubt
            if sum(_surely_valid(v, sub, root) for sub in x) != 1 or not _surely_none_other(v, x, root):
                return False
        elif k == "if":
            # `if` decides the branch: treat its result as certain only when it surely holds
            if _surely_valid(v, x, root):
                if not _surely_valid(v, s.get("then", True), root):
                    return False
            elif not _surely_invalid(v, x, root) or not _surely_valid(v, s.get("else", True), root):
                return False
        elif k in ("then", "else"):
            continue  # handled with "if"
        else:
            return False
    return True


def _surely_none_other(v: Any, subs: list[Any], root: dict[str, Any]) -> bool:
    """oneOf: every branch that did not surely match surely fails."""
    return all(_surely_valid(v, sub, root) or _surely_invalid(v, sub, root) for sub in subs)


def _surely_invalid(v: Any, s: Any, root: dict[str, Any]) -> bool:
    """True only when `v` certainly fails `s`: decided on the simple keywords (type, const, enum,
    required) of `s` itself and of its `properties` (one level), the way if/oneOf branches are written."""
    if not isinstance(s, dict):
        return s is False
    ref = s.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        t: Any = root
        for part in ref[2:].split("/"):
            if not isinstance(t, dict) or part not in t:
                break
            t = t[part]
        else:
            if _surely_invalid(v, t, root):
                return True
    t = s.get("type")
    if t is not None:
        names = t if isinstance(t, list) else [t]
        if all(n in _JSON_TYPES for n in names) and not any(_JSON_TYPES[n](v) for n in names):
            return True
    if "const" in s and isinstance(v, str) and isinstance(s["const"], str) and v != s["const"]:
        return True
    if "enum" in s and isinstance(v, str) and all(isinstance(e, str) for e in s["enum"]) and v not in s["enum"]:
        return True
    if isinstance(v, dict):
        if any(r not in v for r in s.get("required") or ()):
            return True
        for p, ps in (s.get("properties") or {}).items():
            if p in v and _surely_invalid(v[p], ps, root):
                return True
    return False


def validate_data(data: Any, path: str) -> list[RuleError]:
    """Every schema problem of one parsed rule file, then the checks a schema cannot express."""
    if not isinstance(data, dict):
        return [RuleError(path, f"expected a mapping at the top level, got {type(data).__name__}")]
    errors = []
    if not _surely_valid(data, schema(), schema()):
        # Why lazy: importing jsonschema (~60 ms) and running it on every packaged rule (~70 ms) cost
        # every `analyze` run although the rules are almost always valid. The quick check above is
        # conservative (any doubt -> False), so jsonschema still decides, and words, every error.
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema())
        for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
            fld, msg = _describe(err)
            errors.append(RuleError(path, msg, fld))
    if errors:
        return errors
    sig = data.get("signature") or {}
    for i, rx in enumerate(sig.get("related_events") or []):
        why = _pattern_error(rx)
        if why:
            errors.append(RuleError(path, f"bad regex {rx!r}: {why}", f"signature.related_events[{i}]"))
    for i, f in enumerate(sig.get("forms") or []):
        for j, rx in enumerate(
            [*(f.get("related_events") or []), *([f["title_regex"]] if f.get("title_regex") else [])]
        ):
            why = _pattern_error(rx)
            if why:
                errors.append(RuleError(path, f"bad regex {rx!r}: {why}", f"signature.forms[{i}]"))
    if sig.get("title_regex"):
        why = _pattern_error(sig["title_regex"])
        if why:
            errors.append(RuleError(path, f"bad regex {sig['title_regex']!r}: {why}", "signature.title_regex"))
    k = sig.get("kernel") or {}
    intro, fixed = parse_kver(k.get("introduced")), parse_kver(k.get("fixed"))
    if intro and fixed and intro >= fixed:
        errors.append(
            RuleError(path, f"introduced {k['introduced']} is not before fixed {k['fixed']}", "signature.kernel")
        )
    fix = data.get("fix") or {}
    ml = parse_kver(fix.get("mainline"))
    if ml and fixed and ml.branch != fixed.branch:
        errors.append(
            RuleError(
                path, f"fix.mainline {fix['mainline']} differs from signature.kernel.fixed {k['fixed']}", "fix.mainline"
            )
        )
    mainline = parse_kver(fix.get("mainline")) or fixed
    branches: dict[tuple[int, int], str] = {}
    for i, s in enumerate(fix.get("stable") or []):
        v = parse_kver(s)
        if v is None:
            continue
        if v.branch in branches:
            errors.append(
                RuleError(
                    path,
                    f"two stable releases for {v.major}.{v.minor}.y: {branches[v.branch]} and {s}",
                    f"fix.stable[{i}]",
                )
            )
        branches[v.branch] = s
        if mainline and v.branch >= mainline.branch:
            errors.append(
                RuleError(
                    path,
                    f"stable {s} is not older than mainline {mainline}: list only backports to older branches",
                    f"fix.stable[{i}]",
                )
            )
    return errors


def _pattern_error(rx: str) -> str | None:
    """Why a rule's pattern is refused: rules are matched with RE2 only, whose time is linear in the text, so
    a user rule such as `(a+)+$` cannot hang every analysis that loads it (Python's `re` backtracks
    exponentially on it). RE2 has no look-arounds or back-references."""
    from ktriage.linear import re2_error

    try:
        re.compile(rx)
    except re.error as e:
        return str(e)
    why = re2_error(rx)
    return f"not accepted by RE2 (rules are matched in linear time): {why}" if why else None


def _rule_pattern(rx: str) -> Any:
    """A rule's pattern as an RE2 program (validate_data refused those RE2 cannot compile)."""
    from ktriage.linear import RE2Pattern

    return RE2Pattern(rx)


def _compile(data: dict[str, Any], path: str, origin: str) -> Rule:
    from ktriage.logs.frames import normalize

    sig = data.get("signature") or {}
    k = sig.get("kernel") or {}
    return Rule(
        id=data["id"],
        data=data,
        path=path,
        origin=origin,
        kinds=tuple(sig.get("kinds") or ()),
        guilty=tuple(normalize(g) for g in sig.get("guilty") or ()),
        frames=tuple(FrameSpec(normalize(f["function"]), f.get("module")) for f in sig.get("frames") or ()),
        any_frames=tuple(normalize(g) for g in sig.get("any_frames") or ()),
        events=tuple(_rule_pattern(rx) for rx in sig.get("related_events") or ()),
        title_re=_rule_pattern(sig["title_regex"]) if sig.get("title_regex") else None,
        introduced=parse_kver(k.get("introduced")),
        fixed=parse_kver(k.get("fixed")),
        forms=tuple(
            (str(f["name"]), _compile({**data, "signature": {**_form_sig(f), "kernel": k}}, path, origin))
            for f in sig.get("forms") or ()
        ),
    )


def _form_sig(form: dict[str, Any]) -> dict[str, Any]:
    return {key: v for key, v in form.items() if key not in ("name", "evidence")}


def parse_rule_text(text: str, path: str) -> Any:
    """YAML (or TOML for *.toml) text -> data; raises RuleError with the line of a syntax error."""
    if path.endswith(".toml"):
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RuleError(path, f"TOML syntax error: {e}") from None
    if len(text) > MAX_RULE_BYTES:
        raise RuleError(path, f"rule file of {len(text)} bytes: larger than {MAX_RULE_BYTES >> 10} KiB, not read")
    import yaml  # here: a run whose rules come from the cache never needs it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        if "&" in text or "*" in text:  # anchors/aliases possible: look at the events before building anything
            for event in yaml.parse(text, Loader=loader):
                if isinstance(event, yaml.AliasEvent):
                    raise RuleError(
                        path,
                        f"YAML alias *{event.anchor} is not allowed in rule files (aliases let a 1 KB file expand "
                        f"to gigabytes); write the value out",
                    )
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise RuleError(where, f"YAML syntax error: {problem}") from None


def load_rule_file(text: str, path: str, origin: str) -> tuple[Rule | None, list[RuleError]]:
    try:
        data = parse_rule_text(text, path)
    except RuleError as e:
        return None, [e]
    errors = validate_data(data, path)
    if errors:
        return None, errors
    return _compile(data, path, origin), []


# ---------------------------------------------------------------------------------- sources


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "ktriage" / "config.toml"


def configured_dirs(notes: list[str] | None = None) -> list[tuple[str, str]]:
    """(origin, dir) from the config file and KTRIAGE_KB_PATH, lowest precedence first."""
    out: list[tuple[str, str]] = []
    cfg = config_path()
    if cfg.is_file():
        if sys.version_info >= (3, 11):
            import tomllib
        else:
            import tomli as tomllib
        try:
            conf = tomllib.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
            if notes is not None:
                notes.append(f"{cfg}: not read: {e}")
            conf = {}
        dirs = conf.get("kb_dirs", [])
        if isinstance(dirs, str):
            dirs = [dirs]
        if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
            if notes is not None:
                notes.append(f"{cfg}: field kb_dirs: expected a list of directory names")
            dirs = []
        out += [(str(cfg), os.path.expanduser(d)) for d in dirs]
    env = os.environ.get(ENV_PATH, "")
    out += [(ENV_PATH, os.path.expanduser(d)) for d in env.split(":") if d]
    return out


def packaged_rule_files() -> list[tuple[str, str]]:
    """(display path, text) of every packaged rule."""
    out = []
    try:
        bugs = resources.files("ktriage.kb").joinpath("bugs")
        entries = sorted(bugs.iterdir(), key=lambda p: p.name) if bugs.is_dir() else []
    except (OSError, ModuleNotFoundError):
        entries = []
    for entry in entries:
        if entry.name.endswith(RULE_SUFFIXES) and not entry.name.startswith("."):
            try:
                text = entry.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                text = f"\0unreadable: {e}"
            out.append((_display(entry), text))
    return out


def _display(entry: Any) -> str:
    p = str(entry)
    i = p.rfind("ktriage/kb/bugs/")
    return p[i:] if i >= 0 else p


def dir_rule_files(d: str) -> list[tuple[str, str]]:
    out = []
    for p in sorted(Path(d).iterdir()):
        if p.is_file() and p.suffix in RULE_SUFFIXES and not p.name.startswith("."):
            try:
                text = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                text = f"\0unreadable: {e}"
            out.append((str(p), text))
    return out


def _add_file(rs: RuleSet, path: str, text: str, origin: str) -> None:
    if text.startswith("\0unreadable: "):
        rs.errors.append(RuleError(path, "cannot read: " + text[len("\0unreadable: ") :]))
        return
    rule, errors = load_rule_file(text, path, origin)
    rs.errors += errors
    if rule is None:
        return
    old = rs.rules.get(rule.id)
    if old is not None:
        if old.origin == origin:
            rs.errors.append(RuleError(path, f"duplicate id {rule.id!r} (also in {old.path})", "id"))
            return
        rule.overrides = old.path
    rs.rules[rule.id] = rule


def load_rules(extra_dirs: Iterable[str] = (), *, packaged: bool = True, configured: bool = True) -> RuleSet:
    """The packaged rules plus user directories (config file, KTRIAGE_KB_PATH, then `extra_dirs`)."""
    rs = RuleSet()
    if packaged:
        rs.dirs.append(("packaged", "ktriage/kb/bugs"))
        for path, text in packaged_rule_files():
            _add_file(rs, path, text, "packaged")
    dirs = configured_dirs(rs.notes) if configured else []
    dirs += [("--kb", d) for d in extra_dirs]
    for label, d in dirs:
        if not os.path.isdir(d):
            rs.errors.append(RuleError(d, f"knowledge-base directory not found (from {label})"))
            continue
        rs.dirs.append((label, d))
        try:
            files = dir_rule_files(d)
        except OSError as e:
            rs.errors.append(RuleError(d, f"cannot list directory: {e}"))
            continue
        for path, text in files:
            _add_file(rs, path, text, d)
    return rs


def _fingerprint(extra_dirs: tuple[str, ...]) -> tuple[Any, ...]:
    """What the cached rule set depends on: dirs, env, config, and every user file's mtime."""
    parts: list[Any] = [extra_dirs, os.environ.get(ENV_PATH, ""), str(config_path())]
    cfg = config_path()
    try:
        parts.append(cfg.stat().st_mtime_ns)
    except OSError:
        parts.append(None)
    for _, d in configured_dirs() + [("", d) for d in extra_dirs]:
        try:
            parts.append(tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(Path(d).iterdir())))
        except OSError:
            parts.append((d, None))
    return tuple(parts)


_CACHE: dict[tuple[Any, ...], RuleSet] = {}


def _packaged_fingerprint() -> tuple[Any, ...] | None:
    """(name, size, mtime) of each packaged rule file, or None when they are not plain files (a zip)."""
    try:
        bugs = resources.files("ktriage.kb").joinpath("bugs")
        if not isinstance(bugs, Path):
            return None
        return tuple(
            (e.name, st.st_size, st.st_mtime_ns)
            for e in sorted(os.scandir(bugs), key=lambda e: e.name)
            for st in (e.stat(),)
        )
    except (OSError, ModuleNotFoundError):
        return None


def cached_rules(extra_dirs: Iterable[str] = ()) -> RuleSet:
    """load_rules, memoized for one run (analyze calls the matcher once per crash) and across runs in the
    per-user cache (ktriage.diskcache: validating the rules costs ~60 ms, reading them back ~2 ms)."""
    extra = tuple(extra_dirs)
    key = _fingerprint(extra)
    rs = _CACHE.get(key)
    if rs is None:
        if len(_CACHE) > 8:
            _CACHE.clear()
        packaged = _packaged_fingerprint()
        if packaged is None:
            rs = load_rules(list(extra))
        else:
            from ktriage import diskcache

            rs = diskcache.cached("kb", diskcache.key_of("rules/1", packaged, key), lambda: load_rules(list(extra)))
        _CACHE[key] = rs
    return rs
