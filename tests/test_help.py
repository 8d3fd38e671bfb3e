"""`--help` shows an example for the command and every subcommand; click's shell completion works."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

KTRIAGE = "from ktriage.cli import main; main(prog_name='ktriage')"


def ktriage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", KTRIAGE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("cmd", [[], ["analyze"], ["kb"], ["kb", "list"], ["kb", "show"], ["kb", "lint"]])
def test_help_has_an_example(cmd: list[str]) -> None:
    p = ktriage(*cmd, "--help")
    assert p.returncode == 0, p.stderr
    assert "Example" in p.stdout and "  ktriage " + (cmd[0] if cmd else "") in p.stdout


def test_bash_completion_script_and_words() -> None:
    script = ktriage(env={"_KTRIAGE_COMPLETE": "bash_source"})
    assert script.returncode == 0 and "_ktriage_completion" in script.stdout
    words = ktriage(env={"_KTRIAGE_COMPLETE": "bash_complete", "COMP_WORDS": "ktriage ana", "COMP_CWORD": "1"})
    assert "plain,analyze" in words.stdout.splitlines()
    fmt = ktriage(
        env={"_KTRIAGE_COMPLETE": "bash_complete", "COMP_WORDS": "ktriage analyze --format post", "COMP_CWORD": "3"}
    )
    assert "plain,postmortem" in fmt.stdout.splitlines()
