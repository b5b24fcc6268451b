"""The package's own types: ``mypy --strict`` on the source tree, and the
compiled twins' ``.pyi`` stubs checked against the compiled modules and
against their pure twins."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import asgiref_fast

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parent.parent
TWINS = ("context", "hop", "local", "workqueue")
COMPILED_MODULES = [f"asgiref_fast._cy.{name}" for name in TWINS]


def mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MYPYPATH"}
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(600)
def test_mypy_strict_passes_on_the_package():
    if not (ROOT / "asgiref_fast" / "__init__.py").is_file():
        pytest.skip("no source tree beside tests/ (the tests run against an installed package)")
    proc = mypy("mypy", "--strict", "asgiref_fast", cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(600)
@pytest.mark.skipif(not asgiref_fast.COMPILED, reason="checks the compiled twins")
def test_stubs_match_the_compiled_modules(tmp_path):
    # The modules are those this interpreter imports: the source tree's (built
    # in place) or an installed wheel's. Only the stubs are judged here, not
    # the rest of the package: hence a configuration of mypy's defaults.
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    cwd = ROOT if (ROOT / "asgiref_fast").is_dir() else tmp_path
    proc = mypy("mypy.stubtest", "--mypy-config-file", str(config),
                "--allowlist", str(Path(__file__).with_name("stubtest_allowlist.txt")),
                *COMPILED_MODULES, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.timeout(600)
def test_stubs_match_the_pure_modules(tmp_path):
    # The pure twins have no stubs of their own (asgiref_fast/_impl.py takes
    # them as the compiled ones' API): stubtest holds each to its compiled
    # twin's stub, found first by mypy in a copy of the package where
    # _pure/X.pyi is _cy/X.pyi (the copy is imported too: the same source).
    # What @disjoint_base says of a cdef class, __slots__ says of a pure one:
    # stubtest wants no decorator there.
    package = Path(asgiref_fast.__file__).resolve().parent
    copy = tmp_path / "asgiref_fast"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    for name in TWINS:
        stub = (package / "_cy" / f"{name}.pyi").read_text()
        (copy / "_pure" / f"{name}.pyi").write_text(stub.replace("@disjoint_base\n", ""))
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")
    proc = mypy("mypy.stubtest", "--mypy-config-file", str(config),
                "--allowlist", str(Path(__file__).with_name("stubtest_allowlist_pure.txt")),
                *(f"asgiref_fast._pure.{name}" for name in TWINS), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _declared_types(path: Path) -> dict:
    """What a module's source says of each function's parameters and return,
    and of each attribute (a property's is its getter's return), by qualified
    name: annotations as text, quotes taken off."""

    def text(node: "ast.expr | None") -> "str | None":
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node = ast.parse(node.value, mode="eval").body
        return None if node is None else ast.unparse(node)

    found: dict = {}

    def visit(body: list, prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list):
                    found[prefix + node.name] = text(node.returns)
                    continue
                a = node.args
                params = [*a.posonlyargs, *a.args, *([a.vararg] if a.vararg else []),
                          *a.kwonlyargs, *([a.kwarg] if a.kwarg else [])]
                found[prefix + node.name] = ([(p.arg, text(p.annotation)) for p in params], text(node.returns))
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found[prefix + node.target.id] = text(node.annotation)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body, prefix)

    visit(ast.parse(path.read_text()).body, "")
    return found


# Declared by a stub, on purpose not by the pure twin (as stubtest_allowlist_pure.txt).
PURE_LACKS = {"hop.Inbox.outstanding"}


@pytest.mark.parametrize("name", TWINS)
def test_pure_modules_declare_the_types_of_the_stubs(name):
    # stubtest compares names, parameter kinds and defaults, not types: here
    # the pure twin's annotations (which mypy --strict holds its code to) are
    # those of its compiled twin's stub, spelled alike.
    package = Path(asgiref_fast.__file__).resolve().parent
    stub = _declared_types(package / "_cy" / f"{name}.pyi")
    pure = _declared_types(package / "_pure" / f"{name}.py")
    for qualname, declared in stub.items():
        if f"{name}.{qualname}" in PURE_LACKS:
            continue
        assert qualname in pure, f"{name}.{qualname}: the pure twin does not declare it"
        assert pure[qualname] == declared, f"{name}.{qualname}: pure {pure[qualname]}, stub {declared}"
