"""python -m asgiref_fast bench [...]: compare with upstream asgiref."""

import sys


def main(argv: "list[str]") -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m asgiref_fast bench [--quick] [--only NAME...] [--json FILE] [--plot FILE]")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "bench":
        from ._bench.runner import main as bench

        return bench(rest)
    print(f"unknown command {command!r}; try: bench", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
