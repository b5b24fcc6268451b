"""After the benchmark tables: each group's medians as ratios to upstream's.

Benchmarks name their implementation in ``extra_info["implementation"]``
("upstream", "compiled", "pure", ...) and may give ``extra_info["ops"]``, the
operations per measured call, for a per-operation median.
"""


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    benchmarks = getattr(session, "benchmarks", None) or []
    groups: "dict[str, dict[str, float]]" = {}
    for bench in benchmarks:
        stats = getattr(bench, "stats", None)
        name = bench.extra_info.get("implementation")
        if stats is None or name is None:
            continue
        groups.setdefault(bench.group, {})[name] = stats.median / bench.extra_info.get("ops", 1)
    rows = [(group, found) for group, found in sorted(groups.items()) if "upstream" in found]
    if not rows:
        return
    write = terminalreporter.write_line
    write("")
    write("median per operation, and as a ratio to upstream asgiref's:")
    for group, found in rows:
        upstream = found["upstream"]
        cells = [f"{name} {median * 1e9:,.0f} ns ({median / upstream:.3f})"
                 for name, median in sorted(found.items(), key=lambda item: item[0] != "upstream")
                 if name != "upstream"]
        write(f"  {group}: upstream {upstream * 1e9:,.0f} ns; " + "; ".join(cells))
