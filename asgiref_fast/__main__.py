"""``asgiref-fast`` (or ``python -m asgiref_fast``):

- ``run COMMAND [ARGS...]``: run a server (or anything) with asgiref_fast on
  from its interpreter's start-up, as ``ddtrace-run`` or
  ``opentelemetry-instrument`` do: sets ASGIREF_FAST=1 and executes the
  command. Works where ``install()`` in the application comes too late
  (daphne imports asgiref before loading it), and in every worker process.
- ``doctor [--json] [--strict]``: is asgiref_fast in effect here, and how.
- ``bench [...]``: compare with upstream asgiref.
- ``--version``.
"""

import os
import sys

USAGE = """\
usage: asgiref-fast run COMMAND [ARGS...]     (or: python -m asgiref_fast run ...)
       asgiref-fast doctor [--json] [--strict]
       asgiref-fast bench [--quick] [--only NAME...] [--django] [--load N]
                          [--server [NAME...]] [--json FILE] [--plot FILE]
       asgiref-fast --version

run: run COMMAND with asgiref_fast switched on from start-up (ASGIREF_FAST=1),
     e.g. asgiref-fast run daphne mysite.asgi:application"""


def run(argv: "list[str]") -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: asgiref-fast run COMMAND [ARGS...]\n"
              "runs COMMAND with ASGIREF_FAST=1: asgiref_fast stands in for asgiref from the start-up\n"
              "of every Python process it starts, e.g. asgiref-fast run uvicorn mysite.asgi:application",
              file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    os.environ["ASGIREF_FAST"] = "1"
    try:
        if sys.platform == "win32":  # no exec there: a child, whose status we return
            import subprocess

            return subprocess.call(argv)
        os.execvp(argv[0], argv)
    except FileNotFoundError:
        print(f"asgiref-fast run: command not found: {argv[0]}", file=sys.stderr)
        return 127
    except OSError as exc:
        print(f"asgiref-fast run: cannot run {argv[0]}: {exc}", file=sys.stderr)
        return 126
    return 0  # not reached: exec does not return


def version() -> str:
    import asgiref_fast

    return f"asgiref-fast {asgiref_fast.__version__} (the API of asgiref {asgiref_fast.ASGIREF_VERSION})"


def main(argv: "list[str]") -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "--version":
        print(version())
        return 0
    if command == "run":
        return run(rest)
    if command == "bench":
        from ._bench.runner import main as bench

        return bench(rest)
    if command == "doctor":
        from ._doctor import main as doctor

        return doctor(rest)
    print(f"unknown command {command!r}; try: run, doctor, bench, --version", file=sys.stderr)
    return 2


def cli() -> None:
    """The ``asgiref-fast`` console script."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    cli()
