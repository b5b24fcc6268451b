"""ASGIREF_FAST=1: the start-up hook asgiref_fast.pth, and
``python -m asgiref_fast doctor``, in fresh interpreters."""

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import asgiref_fast
from asgiref_fast import _doctor, _impl

ROOT = Path(__file__).resolve().parent.parent


def python(*args: str, **env_changes: "str | None") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ASGIREF_FAST"}
    env.update((k, v) for k, v in env_changes.items() if v is not None)
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=60)


def test_hook_is_installed_in_site_packages():
    hook = _doctor._hook_file()
    assert hook, "asgiref_fast.pth is not installed: pip install -e . (or .) first"
    line = Path(hook).read_text()
    assert line.startswith("import os;") and "__import__('asgiref_fast._autoinstall')" in line


@pytest.mark.parametrize("value", ["1", "yes", "True", " on "])
def test_a_true_value_switches_asgiref_fast_on_at_startup(value):
    proc = python("-c", "import sys, asgiref.sync; print(asgiref.sync.__name__, 'asgiref_fast' in sys.modules)",
                  ASGIREF_FAST=value)
    assert (proc.stdout, proc.stderr) == ("asgiref_fast.sync True\n", "")


# All the hook imports, in every interpreter started with ASGIREF_FAST set.
HOOK_MODULES = ["asgiref_fast", "asgiref_fast._autoinstall", "asgiref_fast._env"]
LOADED = "import sys; print(sorted(m for m in sys.modules if m.startswith('asgiref')))"


@pytest.mark.parametrize("value", [None, ""])
def test_unset_the_hook_imports_nothing(value):
    proc = python("-c", LOADED, ASGIREF_FAST=value)
    assert (proc.stdout, proc.stderr) == ("[]\n", "")


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no", " off "])
def test_a_false_value_leaves_it_off(value):
    proc = python("-c", LOADED + "; import asgiref.sync; print(asgiref.sync.__name__)", ASGIREF_FAST=value)
    assert (proc.stdout, proc.stderr) == (f"{HOOK_MODULES}\nasgiref.sync\n", "")


@pytest.mark.parametrize("value", ["ture", "2", "enabled"])
def test_any_other_value_is_off_and_said_once(value):
    proc = python("-c", LOADED + "; import asgiref.sync; print(asgiref.sync.__name__)", ASGIREF_FAST=value)
    assert proc.stdout == f"{HOOK_MODULES}\nasgiref.sync\n"
    assert proc.stderr == (f"asgiref_fast: ignoring ASGIREF_FAST={value!r}: "
                           "not 1/true/yes/on or 0/false/no/off; taken as off\n")


def test_switched_on_it_waits_for_asgiref_to_be_imported():
    # Interpreters that never import asgiref (manage.py commands, Celery
    # workers, multiprocessing helpers) load the hook's three small modules
    # and nothing else: asgiref_fast itself loads with asgiref.
    code = f"""if True:
        import sys
        before = set(sys.modules)
        {LOADED.replace("; ", chr(10) + "        ")}
        import asyncio, json
        print("asgiref_fast._impl" in sys.modules, "asgiref_fast._install" in sys.modules)
        from asgiref.sync import sync_to_async
        print(sync_to_async.__module__, "asgiref_fast._impl" in sys.modules)
    """
    proc = python("-c", code, ASGIREF_FAST="1")
    assert (proc.stdout, proc.stderr) == (f"{HOOK_MODULES}\nFalse False\nasgiref_fast.sync True\n", "")


@pytest.mark.timeout(120)
def test_threads_importing_asgiref_at_once_all_get_asgiref_fast():
    code = """if True:
        import importlib, threading
        together, names = threading.Barrier(8), []

        def load(name):
            together.wait(30)
            names.append(importlib.import_module(name).__name__)

        threads = [threading.Thread(target=load, args=(name,)) for name in ["asgiref.sync", "json", "asgiref.local",
                   "asyncio", "asgiref.sync", "asgiref", "decimal", "asgiref.wsgi"]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        print(sorted(names))
    """
    proc = python("-c", code, ASGIREF_FAST="1")
    expected = sorted(["asgiref_fast.sync", "json", "asgiref_fast.local", "asyncio",
                       "asgiref_fast.sync", "asgiref", "decimal", "asgiref_fast.wsgi"])
    assert proc.stdout == f"{expected}\n", proc.stderr


def _startup(flag: "str | None") -> "tuple[set[str], int]":
    """The modules loaded, and the resident memory (kB), of an interpreter
    that has run only its start-up."""
    code = ("import sys\n"
            "rss = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS:')]\n"
            "print(' '.join(sorted(sys.modules)), rss[0] if rss else -1)\n")
    proc = python("-c", code, ASGIREF_FAST=flag)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    *modules, rss = proc.stdout.split()
    return set(modules), int(rss)


def test_startup_cost_of_the_variable():
    """With ASGIREF_FAST=1, an interpreter that never imports asgiref loads
    the hook's modules only (not asyncio, not the twins) and its memory
    grows by well under 1 MB (the medians of several runs)."""
    off = [_startup(None) for _ in range(5)]
    on = [_startup("1") for _ in range(5)]
    assert all(modules - off[0][0] == set(HOOK_MODULES) for modules, _ in on), on[0][0] - off[0][0]
    if off[0][1] < 0:
        pytest.skip("no /proc/self/status here to read memory from")
    grown = sorted(rss for _, rss in on)[2] - sorted(rss for _, rss in off)[2]
    assert grown < 1024, f"{grown} kB more resident memory with ASGIREF_FAST=1"


def test_hook_after_upstream_asgiref_warns_in_one_line(tmp_path):
    if importlib.machinery.PathFinder.find_spec("asgiref") is None:
        pytest.skip("upstream asgiref is not installed")
    # The hook as site runs it, but after asgiref was imported (as another .pth could do).
    shutil.copy(_doctor._hook_file(), tmp_path)
    proc = python("-c", f"""if True:
        import os, site, asgiref.sync
        os.environ["ASGIREF_FAST"] = "1"
        site.addsitedir({str(tmp_path)!r})
        import asgiref.sync as now
        from asgiref_fast._doctor import facts
        print(now.__name__, now is asgiref.sync, facts()["activity"])
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("asgiref.sync True no: the ASGIREF_FAST start-up hook failed: ")
    warning = proc.stderr.splitlines()
    assert len(warning) == 1 and warning[0].startswith(
        "asgiref_fast: ASGIREF_FAST is set but asgiref_fast is not in effect: asgiref was imported before it (asgiref, "
    ), proc.stderr
    assert "asgiref.sync" in warning[0]


def doctor(**env) -> dict:
    proc = python("-m", "asgiref_fast", "doctor", "--json", **env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_doctor_with_asgiref_fast_on():
    found = doctor(ASGIREF_FAST="1")
    assert found["active"] is True and found["activity"] == "yes, switched on by ASGIREF_FAST at start-up"
    assert found["compiled"] is asgiref_fast.COMPILED
    assert found["twin"].startswith("compiled" if asgiref_fast.COMPILED else "pure (")
    assert found["stands_in_for_asgiref"] == asgiref_fast.ASGIREF_VERSION
    assert found["startup_hook"] == _doctor._hook_file()
    assert found["python"].endswith(".".join(map(str, sys.version_info[:3])))


def test_doctor_with_asgiref_fast_off():
    assert doctor()["activity"].startswith("no: set ASGIREF_FAST=1, or call asgiref_fast.install()")
    assert doctor(ASGIREF_FAST="off")["activity"] == "no: ASGIREF_FAST='off' is not a true value (1, yes, true, on)"


def test_doctor_after_install_in_code():
    proc = python("-c", "import asgiref_fast; asgiref_fast.install(); "
                        "from asgiref_fast._doctor import facts; print(facts()['activity'])")
    assert proc.stdout == "yes, switched on by asgiref_fast.install()\n", proc.stderr


def test_doctor_prints_a_readable_report():
    proc = python("-m", "asgiref_fast", "doctor", ASGIREF_FAST="1")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0].startswith(f"asgiref_fast {asgiref_fast.__version__} ("), proc.stderr
    labels = [line.split(":")[0].strip() for line in lines[1:]]
    assert labels == ["active", "twin", "start-up hook", "python", "free-threading", "spinning", "idle lanes",
                      "upstream asgiref"]
    assert python("-m", "asgiref_fast", "doctor", "--bogus").returncode == 2


def test_doctor_tells_whether_threads_spin():
    on, off = doctor()["spinning"], doctor(ASGIREF_FAST_NO_SPIN="1")["spinning"]
    if not asgiref_fast.COMPILED:
        assert on == off == "never (the pure twin cannot let go of the GIL to spin)"
    elif _impl.workqueue.configure_spinning()["max_spinners"] > 0:  # as a fresh process has it too
        settings = _impl.workqueue.configure_spinning()
        spinners, spin_us = settings["max_spinners"], settings["spin_us"]
        assert on.startswith(f"up to {spinners} thread(s) at a time, {spin_us} µs each"), on
        assert "only while the machine has a core to spare" in on, on
        assert off == "off (ASGIREF_FAST_NO_SPIN=1)"
    else:
        assert on == "off (one CPU for this process)" and off == "off (ASGIREF_FAST_NO_SPIN=1)"


def test_doctor_names_why_the_compiled_twin_is_missing(monkeypatch):
    monkeypatch.delenv("ASGIREF_FAST_NO_EXTENSIONS", raising=False)
    monkeypatch.setattr(asgiref_fast, "COMPILED", False)
    monkeypatch.setattr(_impl, "IMPORT_ERROR", ImportError("no module named asgiref_fast._cy"))
    assert _doctor._twin() == "pure (the compiled twins failed to import: no module named asgiref_fast._cy)"
    monkeypatch.setenv("ASGIREF_FAST_NO_EXTENSIONS", "1")
    assert _doctor._twin() == "pure (ASGIREF_FAST_NO_EXTENSIONS=1)"


@pytest.mark.parametrize("hook", ["build_wheel", "build_editable"])
def test_wheels_ship_the_hook(hook, tmp_path):
    """Both `pip install .` and `pip install -e .` install the wheel that
    setuptools' PEP 517/660 hook builds: asgiref_fast.pth must be at its top."""
    pytest.importorskip("setuptools", minversion="77")  # builds wheels by itself; reads PEP 639 metadata
    if not (ROOT / "setup.py").is_file():
        pytest.skip("builds from the source tree, which is not beside these tests")
    source = tmp_path / "source"  # a copy: the build must not write to the work tree
    junk = shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.html")
    for name in ("asgiref_fast", "src_pyx"):
        shutil.copytree(ROOT / name, source / name, ignore=junk)
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    proc = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.{hook}({str(tmp_path)!r}))"],
        cwd=source, env={**os.environ, "ASGIREF_FAST_NO_EXTENSIONS": "1"},  # the hook, not the compiler, is tested
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    name = proc.stdout.splitlines()[-1]
    with zipfile.ZipFile(tmp_path / name) as wheel:
        assert wheel.read("asgiref_fast.pth").decode() == Path(_doctor._hook_file()).read_text()
        if hook == "build_wheel":  # pure: no platform in its tag, and the console script
            assert name.endswith("-py3-none-any.whl"), name
            assert "asgiref-fast = asgiref_fast.__main__:cli" in wheel.read(
                next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))).decode()


@pytest.mark.timeout(600)
def test_a_build_without_a_compiler_is_a_pure_wheel(tmp_path):
    """The compiled twins fail to build (no working C compiler): the wheel
    still builds, holds no extension module, and is tagged py3-none-any."""
    pytest.importorskip("setuptools", minversion="77")
    pytest.importorskip("Cython", reason="without Cython the build is pure anyway (see test_wheels_ship_the_hook)")
    if sys.platform == "win32" or not (ROOT / "setup.py").is_file():
        pytest.skip("fakes a broken compiler through CC (POSIX), from the source tree")
    source = tmp_path / "source"
    junk = shutil.ignore_patterns("__pycache__", "*.so", "*.c", "*.html")
    for name in ("asgiref_fast", "src_pyx"):
        shutil.copytree(ROOT / name, source / name, ignore=junk)
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    env = {k: v for k, v in os.environ.items() if k != "ASGIREF_FAST_NO_EXTENSIONS"}
    proc = subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; print(build_meta.build_wheel({str(tmp_path)!r}))"],
        cwd=source, env={**env, "CC": "false", "LDSHARED": "false"}, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert "installing the pure-Python twins only" in proc.stderr
    name = proc.stdout.splitlines()[-1]
    assert name.endswith("-py3-none-any.whl"), name
    with zipfile.ZipFile(tmp_path / name) as wheel:
        assert not [n for n in wheel.namelist() if n.endswith((".so", ".pyd"))]
        assert "asgiref_fast/_pure/hop.py" in wheel.namelist()


def fake_upstream(tmp_path: Path, version: str) -> str:
    """A directory holding an upstream asgiref of *version*, as pip installs it."""
    (tmp_path / "asgiref").mkdir()
    (tmp_path / "asgiref" / "__init__.py").write_text(f"__version__ = {version!r}\n")
    info = tmp_path / f"asgiref-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: asgiref\nVersion: {version}\n")
    return str(tmp_path)


def test_an_older_upstream_is_shown_beside_ours(tmp_path):
    site_dir = fake_upstream(tmp_path, "3.8.1")
    proc = python("-c", "import asgiref_fast, json; asgiref_fast.install(); import asgiref; "
                        "from asgiref_fast._doctor import facts; found = facts(); "
                        "print(asgiref.__version__, found['upstream_asgiref_version']); "
                        "print(found['upstream_asgiref'])",
                  PYTHONPATH=site_dir)
    assert proc.stderr == ""  # older: nothing we provide is missing
    assert proc.stdout == (f"{asgiref_fast.ASGIREF_VERSION} 3.8.1\n3.8.1, installed at {tmp_path / 'asgiref'} "
                           f"(while asgiref_fast is on, asgiref.__version__ says {asgiref_fast.ASGIREF_VERSION} "
                           "(the API it provides) and importlib.metadata says 3.8.1)\n")


@pytest.mark.parametrize("how", ["install", "ASGIREF_FAST"])
def test_a_newer_upstream_is_said_once_at_install(tmp_path, how):
    site_dir = fake_upstream(tmp_path, "3.99.0")
    code = ("import asgiref_fast; asgiref_fast.install(); asgiref_fast.install()\n" if how == "install" else "")
    code += "import asgiref.sync, asgiref.local; print(asgiref.sync.__name__)"
    proc = python("-c", code, PYTHONPATH=site_dir, ASGIREF_FAST="1" if how == "ASGIREF_FAST" else None)
    assert proc.stdout == "asgiref_fast.sync\n"
    assert proc.stderr == (f"asgiref_fast: asgiref 3.99.0 is installed, but asgiref_fast provides the API of asgiref "
                           f"{asgiref_fast.ASGIREF_VERSION}: what asgiref added since is missing while asgiref_fast "
                           "is on\n")
    found = doctor(PYTHONPATH=site_dir)
    assert found["upstream_asgiref"].endswith(f"(newer than asgiref {asgiref_fast.ASGIREF_VERSION}, whose API "
                                              "asgiref_fast provides: what asgiref added since is missing while "
                                              "asgiref_fast is on)")


def test_version_tuples():
    from asgiref_fast._install import _version_tuple

    assert _version_tuple("3.13.0") == (3, 13, 0) < _version_tuple("3.13.1") < _version_tuple("3.14rc1") == (3, 14)
    assert _version_tuple("3.8.1") < _version_tuple("3.13.0") and _version_tuple("junk") == ()
