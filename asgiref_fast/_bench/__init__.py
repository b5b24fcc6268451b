"""Benchmarks of asgiref_fast against upstream asgiref, shared by the
pytest-benchmark suite in ``bench/`` and ``python -m asgiref_fast bench``."""
