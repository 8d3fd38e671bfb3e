"""The `ktriage` command.

Exit status (documented in the README):
  0  every input was read (with or without crashes in it)
  2  usage error
  3  at least one input could not be read (missing, binary, unsupported, corrupt); others were reported
  70 internal error (a bug in ktriage: please report it with --debug output)
"""

from __future__ import annotations

import sys
import traceback
from typing import NamedTuple

import click

from ktriage import __version__

EXIT_OK, EXIT_USAGE, EXIT_INPUT, EXIT_INTERNAL = 0, 2, 3, 70


class _Main(click.Group):
    """Subsystems bring their own command groups (`ktriage kb ...`), imported only when one is asked for:
    importing them on every `ktriage analyze` cost ~20 ms (YAML, difflib) for nothing."""

    LAZY = {
        "kb": "ktriage.kb.cli",
        "fleet": "ktriage.fleet.cli",
        "collect": "ktriage.collect.cli",
        "batch": "ktriage.batch.cli",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY and name not in self.commands:
            import importlib

            try:
                self.add_command(getattr(importlib.import_module(self.LAZY[name]), name))
            except ImportError:
                return None
        return super().get_command(ctx, name)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ktriage")
def main() -> None:
    """Linux kernel crash triage: what failed, the evidence, the known bug and the fix.

    \b
    Examples:
      ktriage analyze /var/crash/127.0.0.1-2024-05-01-10:05:32/vmcore-dmesg.txt
      ktriage analyze /var/crash/*/vmcore --format postmortem -o incident.md
      ktriage kb list

    \b
    Shell completion (bash; zsh and fish likewise with zsh_source, fish_source):
      eval "$(_KTRIAGE_COMPLETE=bash_source ktriage)"
    """


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "postmortem", "html"]),
    default="text",
    show_default=True,
    help="Report format: text (terminal), json (ktriage.report/1), markdown, postmortem (incident document), html.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="Write the report to a file.")
@click.option(
    "--kb",
    "kb_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Extra directory of known-bug rules (repeatable).",
)
@click.option("--vmlinux", type=click.Path(dir_okay=False), help="The crashed kernel's vmlinux with debug info.")
@click.option(
    "--debuginfo",
    "debuginfo_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Directory with debug files (vmlinux, *.ko.debug, .build-id/); repeatable.",
)
@click.option(
    "--system-map",
    type=click.Path(exists=True, dir_okay=False),
    help="The crashed kernel's System.map (kernels before 6.0 without debug info: symbols, then BTF types).",
)
@click.option(
    "--src",
    "src_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="Kernel source tree, to show source lines; repeatable.",
)
@click.option("--no-analysis", is_flag=True, help="Only parse crashes; run no analyzers.")
@click.option(
    "--no-btf",
    is_flag=True,
    help="vmcores without debug info: do not read types from the dump's own BTF (symbols and log only).",
)
@click.option(
    "--changelog",
    type=click.Path(dir_okay=False),
    help="The distro kernel package's changelog (rpm -q --changelog, changelog.Debian.gz): fixed-in by backports.",
)
@click.option("--color/--no-color", default=None, help="Force colour on or off (default: on a terminal).")
@click.option(
    "--max-crashes",
    type=click.IntRange(1),
    default=1000,
    show_default=True,
    help="Crashes reported per input; the others are counted and listed by title.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Text report: every finding's evidence, every frame, every analyzer not run."
)
def analyze(
    paths: tuple[str, ...],
    fmt: str,
    output: str | None,
    kb_dirs: tuple[str, ...],
    vmlinux: str | None,
    debuginfo_dirs: tuple[str, ...],
    system_map: str | None,
    src_dirs: tuple[str, ...],
    no_analysis: bool,
    no_btf: bool,
    changelog: str | None,
    color: bool | None,
    max_crashes: int,
    debug: bool,
    verbose: bool,
) -> None:
    """Analyze kernel logs, crash utility output or vmcores (files, directories, or - for stdin).

    The report opens with a verdict per crash (what happened, the evidence, the known bug and the fix,
    what to do now), then the details; -v shows all of them in the text report.

    \b
    Examples:
      ktriage analyze /var/log/messages
      journalctl -k -o json | ktriage analyze -
      ktriage analyze /var/crash/*/vmcore --vmlinux /usr/lib/debug/lib/modules/$(uname -r)/vmlinux
      ktriage analyze dmesg.txt --format html -o crash.html
    """
    if system_map:  # looked at first among the debug files; checked against the dump before use
        debuginfo_dirs = (system_map, *debuginfo_dirs)
    _tolerant_streams()
    try:
        early = _start_vmcore_open(paths, vmlinux, debuginfo_dirs, no_btf)
        from ktriage.pipeline import Options, analyze_paths, warm
        from ktriage.progress import for_stderr

        opts = Options(
            kb_dirs=list(kb_dirs),
            vmlinux=vmlinux,
            debuginfo_dirs=list(debuginfo_dirs),
            src_dirs=list(src_dirs),
            analyze=not no_analysis,
            btf=not no_btf,
            changelog=changelog,
            max_crashes=max_crashes,
            debug=debug,
        )
        if changelog:
            from ktriage.kb.changelog import ChangelogError, cached_changelog

            try:
                cached_changelog(changelog)
            except ChangelogError as e:
                click.echo(f"ktriage: {e}", err=True)
                sys.exit(EXIT_INPUT)
        if early:
            warm(opts, fmt)
        opts.progress = for_stderr()  # a terminal only: nothing is added to redirected stderr
        try:
            report = analyze_paths(list(paths), opts)
        finally:
            if opts.progress is not None:
                opts.progress.close()
        if fmt == "json":
            from ktriage.render.json_out import render

            text = render(report)
        elif fmt == "markdown":
            from ktriage.render.markdown import render

            text = render(report)
        elif fmt == "postmortem":
            from ktriage.render.postmortem import render as render_postmortem

            text = render_postmortem(report)
        elif fmt == "html":
            from ktriage.render.html import render as render_html

            text = render_html(report)
        else:
            from ktriage.render.text import render as render_text

            text = render_text(report, color=False if output else color, verbose=verbose)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        click.echo(f"ktriage: internal error: {type(e).__name__}: {e} (rerun with --debug)", err=True)
        sys.exit(EXIT_INTERNAL)
    try:
        if output:
            with open(output, "w", encoding="utf-8", errors="backslashreplace") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except OSError as e:
        click.echo(f"ktriage: cannot write report: {e.strerror or e}", err=True)
        sys.exit(EXIT_INPUT)
    failed = [i for i in report.inputs if i.status != "ok"]
    for i in failed:
        click.echo(f"ktriage: {i.error}", err=True)
    from ktriage.fastexit import leave

    leave(EXIT_INPUT if failed else EXIT_OK)  # the real command skips the interpreter's teardown (fastexit says why)


def _tolerant_streams() -> None:
    """A report may quote file names that are not UTF-8 (kept as surrogate escapes) and kernel text: a strict
    stdout/stderr encoding (PYTHONIOENCODING=utf-8:strict, a C locale) must not turn that into a traceback."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
        except (AttributeError, ValueError):
            pass


def _start_vmcore_open(
    paths: tuple[str, ...], vmlinux: str | None, debuginfo_dirs: tuple[str, ...], no_btf: bool
) -> bool:
    """Open the first vmcore among the inputs on a worker thread (ktriage.vmcore.prefetch says why),
    before the heavy imports, so that drgn's loading overlaps them."""
    from ktriage.inputs import expand

    try:
        for i, path in enumerate(expand(list(paths))):
            if i >= 64 or path == "-":
                return False
            from ktriage.vmcore import looks_like_vmcore, prefetch

            if looks_like_vmcore(path):
                return prefetch(path, _PrefetchOpts(vmlinux, tuple(debuginfo_dirs), not no_btf))
    except Exception:  # noqa: BLE001 - only a head start: the pipeline reads and reports every input itself
        return False
    return False


class _PrefetchOpts(NamedTuple):
    vmlinux: str | None
    debuginfo_dirs: tuple[str, ...]
    btf: bool


def run() -> None:
    """The command's entry point (console script, `python -m ktriage.cli`): `main` as the only thing this process
    does, so `analyze` may leave without the interpreter's teardown (ktriage.fastexit)."""
    import ktriage.fastexit

    ktriage.fastexit.standalone = True
    main()


if __name__ == "__main__":
    run()
