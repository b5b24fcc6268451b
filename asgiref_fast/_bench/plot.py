"""The ratios of a bench run as a PNG bar chart (matplotlib)."""


def plot(results: list, path: str, subtitle: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = [r["title"] for r in results]
    twins = [t for t in ("compiled", "pure") if any(t in r["ratio"] for r in results)]
    height = 0.8 / max(len(twins), 1)
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(results) + 1.5))
    for i, twin in enumerate(twins):
        ys = [k + i * height for k in range(len(results))]
        ax.barh(ys, [r["ratio"].get(twin, 0) for r in results], height, label=f"asgiref_fast ({twin})")
    ax.axvline(1.0, color="black", linewidth=1, linestyle="--", label="upstream asgiref")
    ax.set_yticks([k + height * (len(twins) - 1) / 2 for k in range(len(results))], titles)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("time ÷ upstream asgiref time (median, log scale; lower is faster)")
    ax.set_title("asgiref_fast vs asgiref\n" + subtitle, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
