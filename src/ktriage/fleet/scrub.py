"""Privacy: host names, IPv4/IPv6 and MAC addresses and user paths in stored text become keyed hashes.

A keyed hash (HMAC-SHA256 with the store's key) rather than a fixed mask, and the same value always
gives the same replacement: crashes of one host still count as one host, a bucket's host list still
says "3 hosts", and nobody without the key can test a guess ("is it db01?") against the stored text.
Bucket ids are computed from function names and titles before scrubbing, so grouping is unchanged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["Scrubber"]

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|(?:\d{1,3}\.){3}\d{1,3})(?![\w:])")
_MAC = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}(?![\w:])")
_HOME = re.compile(r"/home/([^/\s'\"]+)")


class Scrubber:
    """Replace identifying values in strings, consistently for one key."""

    def __init__(self, key: bytes, hosts: Iterable[str] = ()) -> None:
        self.key = key
        names = {h for h in hosts if h} | {h.split(".")[0] for h in hosts if h and "." in h}
        self.hosts = sorted((h for h in names if len(h) >= 3), key=len, reverse=True)  # db01.example.com, db01

    def token(self, what: str, value: str) -> str:
        digest = hmac.new(self.key, f"{what}\x00{value}".encode(), hashlib.sha256).hexdigest()[:12]
        return f"{what}-{digest}"

    def host(self, name: str | None) -> str | None:
        return None if name is None else self.token("host", name.lower())

    def _ipv4(self, m: re.Match[str]) -> str:
        s = m.group(0)
        try:
            ipaddress.IPv4Address(s)
        except ValueError:
            return s
        return self.token("ip", s)

    def _ipv6(self, m: re.Match[str]) -> str:
        s = m.group(0)
        if s.count(":") < 2 or not s.strip(":"):
            return s
        try:
            addr = ipaddress.IPv6Address(s)
        except ValueError:
            return s
        return self.token("ip", addr.compressed)

    def text(self, s: str) -> str:
        s = _MAC.sub(lambda m: self.token("mac", m.group(0).lower().replace("-", ":")), s)
        s = _IPV6.sub(self._ipv6, s)
        s = _IPV4.sub(self._ipv4, s)
        s = _HOME.sub(lambda m: "/home/" + self.token("user", m.group(1)), s)
        for h in self.hosts:
            if h in s:
                s = re.sub(rf"(?<![\w.]){re.escape(h)}(?!\w|\.\w)", self.token("host", h.lower()), s)
        return s

    def value(self, v: Any) -> Any:
        """Every string inside a JSON value (dict keys included: register names never match)."""
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, dict):
            return {self.text(k) if isinstance(k, str) else k: self.value(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.value(x) for x in v]
        return v
