"""Keep drgn from importing its own CLI command plugins when ktriage sets up a Program.

Why: the first time a drgn Program gets a target, drgn loads every `drgn.plugins` entry point to
call their `drgn_prog_set` hooks. drgn's two built-in entry points (`builtin_commands`,
`crash_commands`) only register commands for the interactive drgn CLI (no hooks), yet importing
them costs ~75 ms per run. ktriage never runs drgn commands, so while it sets up its Programs it
asks drgn (through its documented DRGN_DISABLE_PLUGINS variable) to skip just those two; other
installed plugins (say one adding CTF type support) still load and run, and a user's own
DRGN_PLUGINS/DRGN_DISABLE_PLUGINS still apply. The variable is restored afterwards.

Finding the entry points at all costs another ~40-70 ms (drgn imports importlib.metadata, which pulls
in the email and csv packages, and reads every installed distribution's metadata). When no installed
distribution other than drgn declares a `drgn.plugins` entry point, there is nothing to find, so
ktriage sets DRGN_DISABLE_PLUGINS=* instead: drgn's own switch for "avoid the entry point machinery
entirely", with the same plugins loaded (none).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

_DRGN_OWN = ("builtin_commands", "crash_commands")
_GROUP = "[drgn.plugins]"
_others: bool | None = None  # other distributions declare drgn plugins (None: not looked yet)


def _entry_point_names(text: str) -> list[str]:
    """The names in the [drgn.plugins] section of an entry_points.txt (an INI file)."""
    names, inside = [], False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("["):
            inside = s == _GROUP
        elif inside and "=" in s and not s.startswith(("#", ";")):
            names.append(s.split("=", 1)[0].strip())
    return names


def other_plugins_installed(paths: list[str] | None = None) -> bool:
    """Does any distribution on sys.path, besides drgn itself, declare a drgn plugin entry point?

    Reads only the `entry_points.txt` files of `*.dist-info` / `*.egg-info` directories, which is where
    importlib.metadata finds entry points; anything unreadable counts as "maybe" (True)."""
    for d in paths if paths is not None else sys.path:
        try:
            entries = list(os.scandir(d or "."))
        except OSError:
            continue
        for e in entries:
            if not e.name.endswith((".dist-info", ".egg-info")):
                continue
            p = os.path.join(e.path, "entry_points.txt")
            try:
                with open(p, encoding="utf-8", errors="replace") as f:
                    text = f.read()
            except FileNotFoundError:
                continue
            except OSError:
                return True
            if _GROUP in text and any(n not in _DRGN_OWN for n in _entry_point_names(text)):
                return True
    return False


def _disable_value(old: str | None) -> str:
    global _others
    if old is None and not os.environ.get("DRGN_PLUGINS"):
        if _others is None:
            _others = other_plugins_installed()
        if not _others:
            return "*"
    return ",".join([p for p in (old or "").split(",") if p] + list(_DRGN_OWN))


@contextlib.contextmanager
def without_drgn_command_plugins() -> Iterator[None]:
    old = os.environ.get("DRGN_DISABLE_PLUGINS")
    if old == "*":
        yield
        return
    os.environ["DRGN_DISABLE_PLUGINS"] = _disable_value(old)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DRGN_DISABLE_PLUGINS", None)
        else:
            os.environ["DRGN_DISABLE_PLUGINS"] = old


HELPERS = "drgn.helpers.linux"


def lazy_helper_package() -> None:
    """Let `from drgn.helpers.linux.sched import task_cpu` import that module and what it needs, not all ~55.

    Why: drgn's `drgn/helpers/linux/__init__.py` imports every helper module, to re-export their names from the
    package (`from drgn.helpers.linux import list_for_each_entry`); Python runs it before any submodule, which
    costs ~65 ms a run, where the dozen modules a report uses cost ~20 ms. The package is entered in
    sys.modules uninitialized, with a module `__getattr__` (PEP 562) that runs drgn's own `__init__` the first
    time a re-exported name (or `__all__`) is asked of it, so the package still offers everything it documents.
    Nothing changes when the package is already imported."""
    if HELPERS in sys.modules:
        return
    import importlib
    import importlib.util

    try:
        spec = importlib.util.find_spec(HELPERS)
    except ImportError:
        return
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def __getattr__(name: str) -> object:
        if name.startswith("__") and name != "__all__":
            raise AttributeError(name)
        if importlib.util.find_spec(f"{HELPERS}.{name}") is not None:  # `from drgn.helpers.linux import sched`
            return importlib.import_module(f"{HELPERS}.{name}")
        del module.__dict__["__getattr__"]  # once: drgn's __init__ defines the names from here on
        loader.exec_module(module)
        try:
            return module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {HELPERS!r} has no attribute {name!r}") from None

    module.__dict__["__getattr__"] = __getattr__
    sys.modules[HELPERS] = module
    parent = sys.modules.get("drgn.helpers")
    if parent is not None:
        parent.linux = module  # type: ignore[attr-defined]
