"""Evaluation outputs: the Markdown table and the PNG bar chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["bar_chart", "markdown"]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def markdown(summary: dict[str, Any]) -> str:
    """Pass@1 (%) per model and benchmark, self-correction, and every later model against the first."""
    out = ["## Pass@1", "", *_pass_table(summary)]
    out += _self_correction_table(summary)
    for other in summary.get("comparison") or {}:
        out += _comparison_table(summary, other)
    return "\n".join(out) + "\n"


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _pass_table(summary: dict[str, Any]) -> list[str]:
    models, scores = summary["models"], summary["scores"]
    lines = [_row(["benchmark", "problems", *(f"{m} Pass@1 (%)" for m in models)]), _row(["---"] * (2 + len(models)))]
    for b in summary["benchmarks"]:
        n = scores[models[0]][b].get("problems", 0)
        lines.append(_row([b, n, *(_pct(scores[m][b].get("pass@1")) for m in models)]))
    return lines


def _self_correction_table(summary: dict[str, Any]) -> list[str]:
    scores = summary["scores"]
    rows = [(m, b, scores[m][b]["self_correction"]) for m in summary["models"] for b in summary["benchmarks"]
            if "self_correction" in scores[m][b]]  # fmt: skip
    if not rows:
        return []
    head = ["model", "benchmark", "before (%)", "after (%)", "right→wrong", "wrong→right"]
    lines = ["", "## Self-correction", "", _row(head), _row(["---"] * len(head))]
    return lines + [_row([m, b, _pct(s["before"]), _pct(s["after"]), s["right_to_wrong"], s["wrong_to_right"]])
                    for m, b, s in rows]  # fmt: skip


def _comparison_table(summary: dict[str, Any], other: str) -> list[str]:
    base = summary["models"][0]
    head = ["benchmark", f"{base} (%)", f"{other} (%)", "difference (pts)", "95% interval (pts)"]
    lines = ["", f"## {other} vs {base} (Pass@1, paired bootstrap over problems)", "", _row(head), _row(["---"] * 5)]
    for b, c in summary["comparison"][other].items():
        lo, hi = c["ci95"]
        lines.append(_row([b, _pct(c[base]), _pct(c[other]), f"{100 * c['diff']:+.1f}",
                           f"[{100 * lo:+.1f}, {100 * hi:+.1f}]"]))  # fmt: skip
    return lines


def bar_chart(summary: dict[str, Any], path: str | Path) -> Path:
    """Grouped bars: Pass@1 per benchmark, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models, benches, scores = summary["models"], summary["benchmarks"], summary["scores"]
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(1.6 * len(benches) + 2, 4))
    for i, m in enumerate(models):
        values = [100 * scores[m][b].get("pass@1", 0.0) for b in benches]
        ax.bar([x + i * width for x in range(len(benches))], values, width, label=m)
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(len(benches))], benches)
    ax.set_ylabel("Pass@1 (%)")
    ax.set_title("Pass@1 by benchmark")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
