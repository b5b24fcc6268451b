"""``python -m asgiref_fast doctor [--json]``: is asgiref_fast in effect in this
interpreter, which twin runs and why, and on what."""

import importlib.machinery
import importlib.metadata
import json
import os
import platform
import site
import sys
import sysconfig
from pathlib import Path
from typing import Any

import asgiref_fast

from . import _impl, _install

# Values of ASGIREF_FAST that leave it off, as in the line of asgiref_fast.pth.
FALSE = ("", "0", "false", "no", "off")


def _hook_file() -> "str | None":
    """Where asgiref_fast.pth is installed, if in a directory site reads."""
    dirs = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    for directory in dirs:
        if (Path(directory) / "asgiref_fast.pth").is_file():
            return str(Path(directory) / "asgiref_fast.pth")
    return None


def _activity() -> "tuple[bool, str]":
    installed = any(isinstance(f, _install._StandIn) for f in sys.meta_path)
    hook = sys.modules.get("asgiref_fast._autoinstall")
    if installed:
        how = "by ASGIREF_FAST at start-up" if hook and hook.ERROR is None else "by asgiref_fast.install()"
        return True, f"yes, switched on {how}"
    if hook and hook.ERROR is not None:
        return False, f"no: the ASGIREF_FAST start-up hook failed: {hook.ERROR}"
    if "asgiref" in sys.modules:
        return False, "no: upstream asgiref is imported and asgiref_fast.install() was not called"
    flag = os.environ.get("ASGIREF_FAST", "")
    if flag.strip().lower() in FALSE:
        if flag:
            return False, f"no: ASGIREF_FAST={flag!r} is not a true value (1, yes, true, on)"
    elif sys.flags.no_site:
        return False, "no: ASGIREF_FAST is set but Python runs without site (-S/-I), which reads .pth files"
    elif not _hook_file():
        return False, "no: ASGIREF_FAST is set but asgiref_fast.pth is not installed: reinstall asgiref-fast"
    else:
        return False, "no: ASGIREF_FAST is set, but was not when this interpreter started"
    return False, "no: set ASGIREF_FAST=1, or call asgiref_fast.install() before anything imports asgiref"


def _twin() -> str:
    if asgiref_fast.COMPILED:
        return "compiled"
    flag = os.environ.get("ASGIREF_FAST_NO_EXTENSIONS", "")
    if flag not in ("", "0"):
        return f"pure (ASGIREF_FAST_NO_EXTENSIONS={flag})"
    return f"pure (the compiled twins failed to import: {_impl.IMPORT_ERROR})"


def _spinning() -> str:
    if not asgiref_fast.COMPILED:
        return "never (the pure twin cannot let go of the GIL to spin)"
    flag = os.environ.get("ASGIREF_FAST_NO_SPIN", "")
    settings = _impl.configure_spinning()
    if settings["max_spinners"] <= 0:
        return f"off (ASGIREF_FAST_NO_SPIN={flag})" if flag not in ("", "0") else "off (one CPU for this process)"
    seen = _impl.spinning_report()
    if seen["core_to_spare"] is None:
        now = "never here: no machine-wide count of runnable threads (Linux's /proc/loadavg)"
    else:
        now = (f"now {seen['runnable']} runnable thread(s) on {seen['cores']} core(s): "
               f"{'would' if seen['core_to_spare'] else 'would not'} spin")
    return (f"up to {settings['max_spinners']} thread(s) at a time, {settings['spin_us']} µs each, "
            f"before sleeping, only while the machine has a core to spare; {now} "
            "(ASGIREF_FAST_NO_SPIN=1 turns it off)")


def _free_threading() -> str:
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "no (GIL build)"
    enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    return "yes, GIL re-enabled at run time" if enabled else "yes, GIL disabled"


def _upstream() -> str:
    try:
        version = importlib.metadata.version("asgiref")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
    # PathFinder looks at the files only: asgiref_fast's stand-in is not asked.
    spec = importlib.machinery.PathFinder.find_spec("asgiref")
    where = os.path.dirname(spec.origin) if spec and spec.origin else "?"
    return f"{version}, installed at {where}"


def facts() -> "dict[str, Any]":
    active, activity = _activity()
    return {
        "asgiref_fast": asgiref_fast.__version__,
        "location": os.path.dirname(asgiref_fast.__file__),
        "stands_in_for_asgiref": asgiref_fast.ASGIREF_VERSION,
        "active": active,
        "activity": activity,
        "compiled": asgiref_fast.COMPILED,
        "twin": _twin(),
        "startup_hook": _hook_file(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "free_threading": _free_threading(),
        "spinning": _spinning(),
        "upstream_asgiref": _upstream(),
    }


def main(argv: "list[str]") -> int:
    if argv not in ([], ["--json"]):
        print("usage: python -m asgiref_fast doctor [--json]", file=sys.stderr)
        return 2
    found = facts()
    if argv:
        print(json.dumps(found, indent=2))
        return 0
    print(f"asgiref_fast {found['asgiref_fast']} ({found['location']}), "
          f"standing in for asgiref {found['stands_in_for_asgiref']}")
    rows = {
        "active": found["activity"],
        "twin": found["twin"],
        "start-up hook": found["startup_hook"] or "asgiref_fast.pth not found in site-packages",
        "python": f"{found['python']} on {found['platform']}",
        "free-threading": found["free_threading"],
        "spinning": found["spinning"],
        "upstream asgiref": found["upstream_asgiref"],
    }
    for name, value in rows.items():
        print(f"  {name + ':':<18}{value}")
    return 0
