"""What `compare` shows: a plain-text table (laid out by measures.tables), the JSON record and a
figure of error against time and against peak memory. Only formatting lives here; every number
comes from the run."""
from __future__ import annotations

import json
from pathlib import Path


from measures.tables import format_table, megabytes


def gradient_table(result: dict) -> str:
    ref = result["reference"]
    header = (f"meta-gradient at one θ ({result['theta']['source']}, "
              f"{result['theta']['parameters']} parameters) on {result['tasks']} "
              f"{result['split']} tasks of {result['dataset']}, "
              f"{result['dtype']} on {result['device']}\n")
    if ref["exact"]:
        header += (f"errors are against the implicit hypergradient, exact: λ={ref['lam']}, "
                   f"minimiser refined by Newton steps to inner gradient norm "
                   f"{ref['inner_grad_norm']:.1e}, {ref['solver']} solve to residual "
                   f"{ref['linear_solve_relative_residual']:.1e}; "
                   f"resolution {ref['resolution']:.1e} (errors below it mean nothing), "
                   f"‖g_ref‖={ref['norm']:.4g};\n")
    else:
        header += f"NO EXACT REFERENCE ({ref['why']}): rel err and cosine are not computed;\n"
    header += ("own err is each method against its own exact answer at its K "
               "(implicit: exact solve; FOMAML: MAML; MAML: a second implementation of the "
               "unroll)\n")
    headers = ["method", "cosine", "rel err", "own err", "‖g‖", "time ms", "peak MB"]
    rows = [[r["label"], "-" if r["cosine"] is None else f"{r['cosine']:.4f}",
             "-" if r["rel_err"] is None else f"{r['rel_err']:.3e}",
             "-" if r["own_err"] is None else f"{r['own_err']:.3e}", f"{r['norm']:.4g}",
             f"{1e3 * r['seconds']:.2f}", megabytes(r["peak_bytes"])]
            for r in result["methods"]]
    table = header + format_table(headers, rows)
    if result.get("agreement"):
        labels = list(result["agreement"])
        table += ("\n\nno ground truth here: the methods against each other (cosine between each "
                  "family's largest budget)\n" + format_table(
                      ["", *labels], [[a, *(f"{result['agreement'][a][b]:.4f}" for b in labels)]
                                      for a in labels]))
    return table


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


def series(rows: list[dict]) -> dict[str, list[dict]]:
    """One line per unrolled problem (points: K) and per implicit (problem, K) (points: solver
    iterations), so each line shows what its knob buys."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = r["problem"] if r["solver"] is None else f"{r['problem']} K={r['inner_steps']}"
        groups.setdefault(key, []).append(r)
    return groups


def log_ticks(lo: float, hi: float, most: int = 6, gap: float = 0.12) -> list[float]:
    """Tick positions in [lo, hi] for a log axis, spread so that plain-number labels never
    collide: at most `most`, neighbours at least `gap` of the axis apart, and at least two where
    the range allows. The coarsest of whole decades, 1-3 × 10^k, 1-2-5 × 10^k and 1…9 × 10^k
    that keeps three ticks (else two) is used; an axis too narrow for two of them gets evenly
    spaced round values. (Matplotlib's own log locator labels every minor tick on an axis
    spanning under a decade, and those labels overlap.)"""
    import math

    from matplotlib.ticker import MaxNLocator

    lo, hi = sorted((float(lo), float(hi)))
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= 0:
        return []
    lo = max(lo, hi * 1e-300)
    inside = lambda v: lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)  # noqa: E731 (a limit is inside)
    min_step = gap * max(math.log10(hi / lo), 1e-12)
    decades = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 2)
    candidates = []
    for mantissas in ((1,), (1, 3), (1, 2, 5), range(1, 10)):
        ticks = [v for v in (float(f"{m}e{e}") for e in decades for m in mantissas) if inside(v)]
        ticks = ticks[::max(1, math.ceil(len(ticks) / most))]
        spread = []
        for tick in ticks:  # 1…9 crowd towards each decade's end: drop a tick too near the last
            if not spread or math.log10(tick / spread[-1]) >= min_step:
                spread.append(tick)
        candidates.append(spread)
    for enough in (3, 2):
        for ticks in candidates:
            if len(ticks) >= enough:
                return ticks
    return [float(t) for t in MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
            if inside(t)]


def readable_log_axis(axis) -> None:
    """Few, plain-number labels (0.02, 5, 300) on a log axis; minor ticks keep their grid
    lines but no labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(FixedLocator(log_ticks(*axis.get_view_interval())))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_locator(LogLocator(base=10, subs="auto", numticks=12))
    axis.set_minor_formatter(NullFormatter())


def gradient_figure(result: dict):
    """The figure of error against time (and against peak memory, when measured): error against
    the exact reference, or, when there is none, each method's error against its own answer."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exact = result["reference"]["exact"]
    metric = "rel_err" if exact else "own_err"
    groups = {name: [r for r in rows if r[metric] is not None]
              for name, rows in series(result["methods"]).items()}
    groups = {name: rows for name, rows in groups.items() if rows}
    problems = list(dict.fromkeys(r["problem"] for r in result["methods"]))
    colours = {p: plt.get_cmap("tab10")(i % 10) for i, p in enumerate(problems)}
    styles = ["-", "--", ":", "-."]
    has_memory = any(r["peak_bytes"] for r in result["methods"])
    fig, axes = plt.subplots(1, 2 if has_memory else 1, figsize=(13 if has_memory else 7, 5),
                             squeeze=False)
    axes = axes[0]
    for index, (name, rows) in enumerate(groups.items()):
        problem = rows[0]["problem"]
        style = styles[sum(1 for n in list(groups)[:index]
                           if groups[n][0]["problem"] == problem) % 4]
        errors = [max(r[metric], 1e-16) for r in rows]
        kw = dict(color=colours[problem], linestyle=style, marker="o", markersize=4, label=name)
        axes[0].plot([1e3 * r["seconds"] for r in rows], errors, **kw)
        if has_memory:
            axes[1].plot([max(r["peak_bytes"] or 0, 1) / 2**20 for r in rows], errors, **kw)
    axes[0].set_xlabel("wall time per meta-gradient (ms, median)")
    if has_memory:
        axes[1].set_xlabel(f"peak memory per meta-gradient (MB, {result['device']})")
    for ax in axes:
        if exact:
            ax.axhline(max(result["reference"]["resolution"], 1e-16), color="grey", linewidth=0.8,
                       linestyle="--", label="reference resolution")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylabel("relative error vs the exact implicit hypergradient" if exact else
                      "relative error vs the method's own exact answer (no exact reference)")
        ax.grid(True, which="both", alpha=0.3)
        ax.autoscale_view()  # the limits the ticks are chosen for
        readable_log_axis(ax.xaxis)
        readable_log_axis(ax.yaxis)
    axes[-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"{result['dataset']}: meta-gradient error against cost "
                 f"({result['tasks']} tasks, {result['theta']['parameters']} parameters; lines: "
                 "unrolled over K, implicit over solver iterations)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_gradients(result: dict, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = gradient_figure(result)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
