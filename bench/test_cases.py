"""The benchmark cases of asgiref_fast._bench.cases under pytest-benchmark:
every case against upstream asgiref and both twins of asgiref_fast (and
a2wsgi for the WSGI cases), grouped per case so each table compares them;
each floor in the group of the case it bounds.

    python -m pytest bench/ --benchmark-columns=median,iqr,rounds

Times are per batch of ``ops`` operations (see extra_info); compare medians
within a group. ``python -m asgiref_fast bench`` runs the same cases,
alternating between implementations, and prints per-operation ratios.
"""

import importlib.util

import pytest

from asgiref_fast._bench import implementations
from asgiref_fast._bench.cases import CASES, FLOORS

CONTENDERS = implementations.load()
if implementations.a2wsgi() is not None:
    CONTENDERS["a2wsgi"] = implementations.a2wsgi()


def _params():
    for case in CASES.values():
        for name in CONTENDERS:
            if name == "a2wsgi" and case.group != "wsgi":
                continue  # a2wsgi only stands in for WsgiToAsgi
            marks = []
            if case.group == "django" and importlib.util.find_spec("django") is None:
                marks.append(pytest.mark.skip(reason="needs Django"))
            yield pytest.param(case, name, id=f"{case.name}-{name}", marks=marks)


@pytest.mark.parametrize(("case", "name"), list(_params()))
def test_case(benchmark, case, name):
    batch, close = case.make(CONTENDERS[name])
    try:
        benchmark.group = f"{case.name}: {case.title} (x{case.ops})"
        benchmark.extra_info["ops"] = case.ops
        benchmark.extra_info["implementation"] = name
        benchmark.pedantic(batch, rounds=10, warmup_rounds=1, iterations=1)
    finally:
        close()


def _floor_params():
    for floor in FLOORS.values():
        marks = []
        if CASES[floor.bounds].group == "django" and importlib.util.find_spec("django") is None:
            marks.append(pytest.mark.skip(reason="needs Django"))
        yield pytest.param(floor, id=f"{floor.bounds}-{floor.name}", marks=marks)


@pytest.mark.parametrize("floor", list(_floor_params()))
def test_floor(benchmark, floor):
    # In the group of the case it bounds, so that its table shows the floor too.
    batch, close = floor.make(None)
    bounded = CASES[floor.bounds]
    try:
        benchmark.group = f"{bounded.name}: {bounded.title} (x{bounded.ops})"
        benchmark.extra_info["ops"] = floor.ops
        benchmark.extra_info["implementation"] = floor.name
        benchmark.pedantic(batch, rounds=10, warmup_rounds=1, iterations=1)
    finally:
        close()


def test_upstream_is_compared():
    assert "upstream" in CONTENDERS, implementations.upstream_missing()
