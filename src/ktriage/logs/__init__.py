"""Kernel logs in any form -> Crash records. Entry points: `parse_log_text`, `scan_binary`."""

from ktriage.logs.scanner import Scanner, parse_log_text, scan_binary, scan_records

__all__ = ["Scanner", "parse_log_text", "scan_binary", "scan_records"]
