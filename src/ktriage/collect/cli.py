"""`ktriage collect`: the boot-time collector's command line, its config file and `--install`."""

from __future__ import annotations

import configparser
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ktriage.collect.spool import SendResult

__all__ = ["collect"]

DEFAULT_CONFIG = "/etc/ktriage/collect.conf"
DEFAULT_PSTORE = ("/sys/fs/pstore", "/var/lib/systemd/pstore")
UNIT_DIR = "/etc/systemd/system"
EXIT_USAGE = 2


def _defaults() -> tuple[str, str]:
    """(spool, state): the system's when root (the systemd unit), the user's own otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/ktriage/spool", "/var/lib/ktriage/collect-state.json"
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "ktriage", "spool"), os.path.join(base, "ktriage", "collect-state.json")


def _read_config(path: str | None) -> dict[str, str]:
    explicit = path is not None
    path = path or DEFAULT_CONFIG
    if not os.path.exists(path):
        if explicit:
            raise click.UsageError(f"--config {path}: no such file")
        return {}
    cp = configparser.ConfigParser(interpolation=None)
    try:
        cp.read(path)
    except (configparser.Error, OSError, UnicodeDecodeError) as e:
        raise click.UsageError(f"{path}: {' '.join(str(e).split())}") from None
    return {k: v.strip() for k, v in cp["collect"].items()} if cp.has_section("collect") else {}


def _install(root: str) -> None:
    """Write the unit, the timer and (unless present) the config file under `root` ("/" normally)."""
    files = resources.files("ktriage.collect") / "contrib"
    units = os.path.join(root, UNIT_DIR.lstrip("/"))
    os.makedirs(units, exist_ok=True)
    for name in ("ktriage-collect.service", "ktriage-collect.timer"):
        dest = os.path.join(units, name)
        with open(dest, "wb") as f:
            f.write((files / name).read_bytes())
        click.echo(f"wrote {dest}")
    conf = os.path.join(root, DEFAULT_CONFIG.lstrip("/"))
    if os.path.exists(conf):
        click.echo(f"kept  {conf} (already there)")
    else:
        os.makedirs(os.path.dirname(conf), exist_ok=True)
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write((files / "collect.conf").read_bytes())
        click.echo(f"wrote {conf} (set url and token in it)")
    click.echo("then: systemctl daemon-reload && systemctl enable ktriage-collect.service ktriage-collect.timer")


@click.command()
@click.option("--crash-dir", "crash_dirs", multiple=True, help="kdump's dump directory (default /var/crash).")
@click.option(
    "--pstore",
    "pstore_dirs",
    multiple=True,
    help="pstore directory (default /sys/fs/pstore and /var/lib/systemd/pstore); repeatable.",
)
@click.option("--journal/--no-journal", default=None, help="Also read the previous boot's kernel journal.")
@click.option("--submit", "url", help="Fleet server URL (POST /api/v1/reports).")
@click.option("--token", help="Write token for --submit (better in the config file than on a command line).")
@click.option("--db", help="Store in this fleet database (SQLAlchemy URL) instead of sending.")
@click.option("--spool", help="Outbox for reports not yet sent (default /var/lib/ktriage/spool as root).")
@click.option("--state", help="What was already handled (default /var/lib/ktriage/collect-state.json as root).")
@click.option("--host", help="Host name the reports are filed under (default: this machine's).")
@click.option("--debuginfo", "debuginfo_dirs", multiple=True, help="Extra directory with debug files; repeatable.")
@click.option("--dry-run", is_flag=True, help="Find and analyze, print; write and send nothing.")
@click.option(
    "--retry-for",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to keep retrying an unreachable server (with backoff) before leaving reports spooled.",
)
@click.option("--retry-now", is_flag=True, help="Try the server now even if the backoff says wait.")
@click.option("--backoff-base", type=float, default=30.0, show_default=True, hidden=True)
@click.option(
    "--settle",
    type=float,
    default=600.0,
    show_default=True,
    hidden=True,
    help="A *-incomplete dump younger than this is still being written.",
)
@click.option("--tmp-dir", type=click.Path(file_okay=False), help="Where compressed dumps are decompressed.")
@click.option("--config", "config_path", help=f"Config file (default {DEFAULT_CONFIG} if present).")
@click.option("--install", is_flag=True, help="Install the systemd unit, timer and config file, then exit.")
@click.option("--install-root", default="/", hidden=True)
def collect(**kw: Any) -> None:
    """Find the crashes this machine left (kdump, pstore, journal), analyze each once, send the reports.

    Exit status: 0 all handled; 2 usage error; 3 something could not be handled (the rest was);
    4 reports wait in the spool for a later run."""
    if kw["install"]:
        _install(kw["install_root"])
        return
    conf = _read_config(kw["config_path"])

    def pick(key: str, conf_key: str | None = None) -> Any:
        v = kw.get(key)
        return v if v not in (None, ()) else conf.get(conf_key or key) or None

    url, db = pick("url"), pick("db")
    token = pick("token")
    if url and db:
        raise click.UsageError("give --submit or --db, not both")
    if url and not token:
        raise click.UsageError("--submit needs --token (or token = ... in the config file)")
    spool_default, state_default = _defaults()
    journal = kw["journal"] if kw["journal"] is not None else conf.get("journal", "no").lower() in ("yes", "true", "1")

    from ktriage.collect.run import CollectConfig
    from ktriage.collect.run import collect as run_collect
    from ktriage.pipeline import Options

    send: Callable[[dict[str, Any]], SendResult] | None = None
    if not kw["dry_run"]:
        try:
            if url:
                from ktriage.collect.submit import HttpTarget

                send = HttpTarget(url, token)
            elif db:
                from ktriage.collect.submit import DbTarget

                send = DbTarget(db)
        except ValueError as e:
            raise click.UsageError(str(e)) from None
    debuginfo = list(kw["debuginfo_dirs"]) or conf.get("debuginfo", "").split()
    cfg = CollectConfig(
        crash_dirs=list(kw["crash_dirs"]) or conf.get("crash_dir", "/var/crash").split(),
        pstore_dirs=list(kw["pstore_dirs"]) or (conf["pstore"].split() if "pstore" in conf else list(DEFAULT_PSTORE)),
        journal=journal,
        spool=pick("spool") or spool_default,
        state=pick("state") or state_default,
        host=pick("host") or socket.gethostname(),
        send=send,
        dry_run=kw["dry_run"],
        retry_for=kw["retry_for"],
        retry_now=kw["retry_now"],
        backoff_base=kw["backoff_base"],
        tmp_dir=kw["tmp_dir"],
        settle=kw["settle"],
        options=Options(debuginfo_dirs=debuginfo),
    )
    saved = tempfile.tempdir
    if kw["tmp_dir"]:
        tempfile.tempdir = kw["tmp_dir"]  # the pipeline's own temporary files (flattened dumps) go there too
    try:
        code = run_collect(cfg)
    finally:
        tempfile.tempdir = saved
    sys.exit(code)
