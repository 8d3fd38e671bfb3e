"""ktriage: Linux kernel crash triage.

Where things happen, top to bottom:
  logs/       a kernel log (any form) -> Crash records       (logs/scanner.py is the entry point)
  crashout/   `crash` utility output   -> Crash records
  analyzers/  Crash (+ debug info, vmcore) -> Findings       (analyzers/__init__.py holds the registry)
  kb/         Crash + Findings -> known-bug matches
  report.py   everything above -> one Report model
  render/     Report -> text, JSON, Markdown
  cli.py      the `ktriage` command
"""

__version__ = "0.1.0"
