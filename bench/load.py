"""The real-server comparison is part of the bench now:

    python -m pip install -e ".[bench]" && python -m asgiref_fast bench --server

(``--help`` lists its options). This script runs it, passing its arguments on:
``python bench/load.py compiled wsgi --server-rounds 1`` is
``python -m asgiref_fast bench --server compiled wsgi --server-rounds 1``.
"""

import sys

from asgiref_fast._bench.runner import main

if __name__ == "__main__":
    sys.exit(main(["--server", *sys.argv[1:]]))
