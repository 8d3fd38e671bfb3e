"""`ktriage batch`: many crashes -> one report line each, on this machine or a Dask cluster."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

__all__ = ["batch"]

EXIT_OK, EXIT_USAGE, EXIT_FAILED = 0, 2, 3


class _Progress:
    """done / failed / remaining and tasks per minute on stderr, only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.failed = total, 0, 0
        self.t0 = time.monotonic()
        self.bar: Any = None
        if sys.stderr.isatty() and total:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[failed]} failed, {task.fields[left]} left, {task.fields[rate]}/min"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.task = self.bar.add_task("batch", total=total, failed=0, left=total, rate="-")
            self.bar.start()

    def advance(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        if self.bar is not None:
            rate = self.done / max(time.monotonic() - self.t0, 1e-6) * 60
            self.bar.update(self.task, advance=1, failed=self.failed, left=self.total - self.done, rate=f"{rate:.1f}")

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


@click.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--scheduler", help="Dask scheduler address (tcp://host:8786); default: a local cluster.")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default="CPUs", help="Tasks at once.")
@click.option("--vmlinux", type=click.Path(dir_okay=False), help="A vmlinux with debug info for every task.")
@click.option(
    "--debuginfo",
    "debuginfo_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Directory of debug files, matched by build id per task; repeatable.",
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False),
    help="JSON lines file (appended; a rerun skips what it holds). Default: standard output.",
)
@click.option("--submit", "url", help="Also send each report to this fleet server.")
@click.option("--token", help="Write token for --submit.")
@click.option("--db", help="Also store each report in this fleet database (SQLAlchemy URL).")
@click.option("--host", help="Host name to file submitted reports under.")
@click.option("--timeout", type=float, help="Seconds per task attempt (a task gets two).")
@click.option("--memory-limit", "memory_mb", type=int, help="Address-space limit per task, in MB.")
@click.option("--no-btf", is_flag=True, help="vmcores without debug info: no types from the dump's BTF.")
def batch(**kw: Any) -> None:
    """Analyze every vmcore and kernel log under PATHS, one ktriage.report/1 JSON line per task.

    A task that fails, runs out of time or memory is retried once, then written as failed with its reason.
    Exit status: 0 every task succeeded; 2 usage error; 3 some tasks failed or could not be submitted."""
    from ktriage.batch.discover import find_tasks
    from ktriage.batch.output import ResultsFile, done_paths
    from ktriage.batch.task import Limits

    if kw["url"] and kw["db"]:
        raise click.UsageError("give --submit or --db, not both")
    if kw["url"] and not kw["token"]:
        raise click.UsageError("--submit needs --token")
    if kw["scheduler"] and kw["engine"] != "dask":
        raise click.UsageError("--scheduler needs --engine dask")
    send = _target(kw)
    tasks, notes = find_tasks(list(kw["paths"]))
    for n in notes:
        click.echo(f"ktriage batch: {n}", err=True)
    done = done_paths(kw["out_path"])
    todo = [t for t in tasks if t not in done]
    if done and len(todo) < len(tasks):
        click.echo(f"ktriage batch: {len(tasks) - len(todo)} task(s) already in {kw['out_path']}: skipped", err=True)
    limits = Limits(
        timeout=kw["timeout"],
        memory_mb=kw["memory_mb"],
        vmlinux=kw["vmlinux"],
        debuginfo_dirs=tuple(kw["debuginfo_dirs"]),
        btf=not kw["no_btf"],
    )
    try:
        lines = _engine(kw, todo, limits)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    out = ResultsFile(kw["out_path"], sys.stdout)
    progress = _Progress(len(todo))
    bad = 0
    try:
        for line in lines:
            ok = line["batch"]["status"] == "ok"
            if ok and send is not None:
                err = send(line, kw["host"])
                if err:
                    line["batch"]["submit_error"] = err
                    click.echo(f"ktriage batch: {line['batch']['path']}: not submitted: {err}", err=True)
                    bad += 1
            out.write(line)
            if not ok:
                bad += 1
                click.echo(f"ktriage batch: {line['batch']['path']}: failed: {line['batch']['reason']}", err=True)
            progress.advance(ok)
    finally:
        progress.stop()
        out.close()
    sys.exit(EXIT_FAILED if bad else EXIT_OK)


def _engine(kw: dict[str, Any], todo: list[str], limits: Any) -> Iterator[dict[str, Any]]:
    if not todo:
        return iter(())
    if kw["engine"] == "dask":
        from ktriage.batch.dask_engine import run_dask

        try:
            import dask.distributed  # noqa: F401 - fail early, before any task starts
        except ImportError:
            raise ValueError("--engine dask needs Dask: pip install 'ktriage[dask]'") from None
        return run_dask(todo, limits, kw["workers"], kw["scheduler"])
    from ktriage.batch.local import run_local

    return run_local(todo, limits, kw["workers"])


def _target(kw: dict[str, Any]) -> Callable[[dict[str, Any], str | None], str | None] | None:
    """A function sending one report (None when it went through, else the reason), or None."""
    if not (kw["url"] or kw["db"]):
        return None
    from ktriage.collect.submit import DbTarget, HttpTarget

    try:
        target: Any = HttpTarget(kw["url"], kw["token"]) if kw["url"] else DbTarget(kw["db"])
    except ValueError as e:
        raise click.UsageError(str(e)) from None

    def send(line: dict[str, Any], host: str | None) -> str | None:
        report = {k: v for k, v in line.items() if k != "batch"}
        r = target({"report": report, "host": host})
        return None if r.status == "sent" else r.detail

    return send
