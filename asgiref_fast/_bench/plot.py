"""How much faster each case ran, as a PNG bar chart (matplotlib)."""


def plot(results: list, path: str, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    titles = [r["title"] for r in results]
    twins = [t for t in ("compiled", "pure") if any(t in r["speedup"] for r in results)]
    height = 0.8 / max(len(twins), 1)
    fig, ax = plt.subplots(figsize=(11, 0.5 * len(results) * max(len(twins), 1) + 2))
    for i, twin in enumerate(twins):
        ys = [k + i * height for k in range(len(results))]
        values = [r["speedup"].get(twin, 0) for r in results]
        bars = ax.barh(ys, values, height, label=f"asgiref_fast, {twin} twin")
        ax.bar_label(bars, labels=[f"{v:.2f}x" if v else "" for v in values], padding=3, fontsize=8)
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--", label="asgiref (1x)")
    ax.set_yticks([k + height * (len(twins) - 1) / 2 for k in range(len(results))], titles, fontsize=9)
    ax.invert_yaxis()
    ax.set_xscale("log")
    # Plain multiples (0.5x, 1x, 2x, 5x, 10x), not powers of ten.
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    top = max([r["speedup"].get(t, 1) for r in results for t in twins] + [1])
    ax.set_xlim(right=top * 2)  # room for the labels
    ax.set_xlabel("x faster than asgiref: upstream's median time ÷ ours, same run (log scale)")
    named = " and ".join(f"{t} twin" for t in twins) or "no twin"
    ax.set_title(f"asgiref_fast ({named}) vs asgiref\n" + subtitle, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
