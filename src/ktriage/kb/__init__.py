"""Known bugs: match a crash to an upstream bug, say whether this kernel has the fix, what to do today.

    from ktriage.kb import match_crash, load_rules
    matches = match_crash(crash, findings, kb_dirs)   # [Match..., Match(similar=True)..., KBNote...]

Rules are data (kb/bugs/*.yaml, format in FORMAT.md, schema in ktriage/schema/kb-rule-1.json).
"""

from ktriage.kb.fixed import Verdict, fixed_verdict, upstream_verdict
from ktriage.kb.match import KBNote, Match, crash_stack, evaluate, match_crash, match_rules
from ktriage.kb.rules import Rule, RuleError, RuleSet, load_rule_file, load_rules, validate_data
from ktriage.kb.versions import debvercmp, kvercmp, parse_kver, rpm_evr_cmp, rpmvercmp, running_kernel

__all__ = [
    "KBNote",
    "Match",
    "Rule",
    "RuleError",
    "RuleSet",
    "Verdict",
    "crash_stack",
    "debvercmp",
    "evaluate",
    "fixed_verdict",
    "kvercmp",
    "load_rule_file",
    "load_rules",
    "match_crash",
    "match_rules",
    "parse_kver",
    "rpm_evr_cmp",
    "rpmvercmp",
    "running_kernel",
    "upstream_verdict",
    "validate_data",
]
