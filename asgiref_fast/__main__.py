"""python -m asgiref_fast bench [...]: compare with upstream asgiref.
python -m asgiref_fast doctor [--json]: is asgiref_fast in effect here, and how."""

import sys


def main(argv: "list[str]") -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m asgiref_fast bench [--quick] [--only NAME...] [--django] [--load N]\n"
              "                                   [--server [NAME...]] [--json FILE] [--plot FILE]\n"
              "       python -m asgiref_fast doctor [--json]")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from ._bench.runner import main as bench

        return bench(rest)
    if command == "doctor":
        from ._doctor import main as doctor

        return doctor(rest)
    print(f"unknown command {command!r}; try: bench, doctor", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
