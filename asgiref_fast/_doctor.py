"""``python -m asgiref_fast doctor [--json] [--strict]``: is asgiref_fast in
effect in this interpreter, which twin runs and why, and on what. With
``--strict``, exits 1 if the compiled twins are missing (not turned off by
ASGIREF_FAST_NO_EXTENSIONS) or the ASGIREF_FAST start-up hook failed."""

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

from . import _env, _impl, _install, _lanes


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
    installed = _install.stand_in() is not None
    hook = sys.modules.get("asgiref_fast._autoinstall")
    by_hook = bool(hook and hook.ON and hook.ERROR is None)
    if installed or by_hook:
        # The hook installs it when asgiref is first imported: maybe not yet.
        how = "by ASGIREF_FAST at start-up" if by_hook else "by asgiref_fast.install()"
        return True, f"yes, switched on {how}"
    if hook and hook.ERROR is not None:
        return False, f"no: the ASGIREF_FAST start-up hook failed: {hook.ERROR}"
    if "asgiref" in sys.modules:
        return False, "no: upstream asgiref is imported and asgiref_fast.install() was not called"
    flag = os.environ.get("ASGIREF_FAST", "")
    if not _env.switch("ASGIREF_FAST"):
        if flag.strip():
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
    if _env.switch("ASGIREF_FAST_NO_EXTENSIONS"):
        return f"pure (ASGIREF_FAST_NO_EXTENSIONS={os.environ['ASGIREF_FAST_NO_EXTENSIONS']})"
    return f"pure (the compiled twins failed to import: {_impl.IMPORT_ERROR})"


def _spinning() -> str:
    if not asgiref_fast.COMPILED:
        return "never (the pure twin cannot let go of the GIL to spin)"
    settings = _impl.workqueue.configure_spinning()
    if settings["max_spinners"] <= 0:
        if _env.switch("ASGIREF_FAST_NO_SPIN"):
            return f"off (ASGIREF_FAST_NO_SPIN={os.environ['ASGIREF_FAST_NO_SPIN']})"
        return "off (one CPU for this process)"
    seen = _impl.workqueue.spinning_report()
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


def _idle_lanes() -> str:
    return (f"at most {_lanes.MAX_IDLE_LANES} wait idle (ASGIREF_FAST_MAX_IDLE_LANES), each retiring after "
            f"{_lanes.IDLE_SECONDS:g} s unused (ASGIREF_FAST_IDLE_SECONDS); {_lanes.pool().idle_count()} idle now")


def _upstream_version() -> "str | None":
    try:
        return importlib.metadata.version("asgiref")
    except importlib.metadata.PackageNotFoundError:
        return None


def _upstream() -> str:
    version = _upstream_version()
    if version is None:
        return "not installed"
    # PathFinder looks at the files only: asgiref_fast's stand-in is not asked.
    spec = importlib.machinery.PathFinder.find_spec("asgiref")
    where = os.path.dirname(spec.origin) if spec and spec.origin else "?"
    ours = asgiref_fast.ASGIREF_VERSION
    if _install._version_tuple(version) > _install._version_tuple(ours):
        versus = (f"newer than asgiref {ours}, whose API asgiref_fast provides: "
                  f"what asgiref added since is missing while asgiref_fast is on")
    elif version != ours:
        versus = (f"while asgiref_fast is on, asgiref.__version__ says {ours} (the API it provides) "
                  f"and importlib.metadata says {version}")
    else:
        versus = "the release asgiref_fast mirrors"
    return f"{version}, installed at {where} ({versus})"


def _problems(found: "dict[str, Any]") -> "list[str]":
    """What --strict fails on."""
    problems = []
    if not found["compiled"] and not _env.switch("ASGIREF_FAST_NO_EXTENSIONS"):
        problems.append(f"the compiled twins are not in use: {found['twin']}")
    hook = sys.modules.get("asgiref_fast._autoinstall")
    if hook and hook.ERROR is not None:
        problems.append(f"the ASGIREF_FAST start-up hook failed: {hook.ERROR}")
    return problems


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
        "idle_lanes": _idle_lanes(),
        "upstream_asgiref": _upstream(),
        "upstream_asgiref_version": _upstream_version(),
    }


def main(argv: "list[str]") -> int:
    if not set(argv) <= {"--json", "--strict"} or len(set(argv)) != len(argv):
        print("usage: python -m asgiref_fast doctor [--json] [--strict]", file=sys.stderr)
        return 2
    found = facts()
    status = 0
    if "--strict" in argv:
        for problem in _problems(found):
            print(f"asgiref_fast doctor --strict: {problem}", file=sys.stderr)
            status = 1
    if "--json" in argv:
        print(json.dumps(found, indent=2))
        return status
    print(f"asgiref_fast {found['asgiref_fast']} ({found['location']}), "
          f"standing in for asgiref {found['stands_in_for_asgiref']}")
    rows = {
        "active": found["activity"],
        "twin": found["twin"],
        "start-up hook": found["startup_hook"] or "asgiref_fast.pth not found in site-packages",
        "python": f"{found['python']} on {found['platform']}",
        "free-threading": found["free_threading"],
        "spinning": found["spinning"],
        "idle lanes": found["idle_lanes"],
        "upstream asgiref": found["upstream_asgiref"],
    }
    for name, value in rows.items():
        print(f"  {name + ':':<18}{value}")
    return status
