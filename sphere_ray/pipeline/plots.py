"""The report's figures (matplotlib, Agg backend)."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

__all__ = ["plot_behaviours", "plot_histograms", "plot_loss", "plot_pairs", "plot_rewards", "plot_trees"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_pairs(pairs: list[dict[str, Any]], path: Path) -> Path:
    """Bar chart: pairs per stage and level."""
    counts = collections.Counter((p["stage"], p["level"]) for p in pairs)
    keys = sorted(counts)
    fig, ax = _plt().subplots(figsize=(5, 3))
    ax.bar([f"stage {s}\n{lvl}" for s, lvl in keys], [counts[k] for k in keys], color="#4C72B0")
    ax.set_ylabel("pairs")
    ax.set_title("Pairs per stage and level")
    return _save(fig, path)


def plot_rewards(pairs: list[dict[str, Any]], path: Path) -> Path:
    """Histograms of the chosen and rejected sides' scores."""
    fig, ax = _plt().subplots(figsize=(5, 3))
    ax.hist([p["chosen_score"] for p in pairs], bins=20, alpha=0.6, label="chosen", color="#55A868")
    ax.hist([p["rejected_score"] for p in pairs], bins=20, alpha=0.6, label="rejected", color="#C44E52")
    ax.set_xlabel("reward (step) / mean step reward (trajectory)")
    ax.set_ylabel("pairs")
    ax.legend()
    return _save(fig, path)


def plot_loss(history: list[dict[str, Any]], path: Path, ylabel: str = "DPO loss") -> Path:
    """Train and eval loss per step (TRL's log history)."""
    fig, ax = _plt().subplots(figsize=(5, 3))
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    for points, label in ((train, "train loss"), (evals, "eval loss")):
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    return _save(fig, path)


def plot_histograms(series: dict[str, list[int]], path: Path, xlabel: str, title: str) -> Path:
    """Side-by-side bars of equal-width histograms over [0, 1] (``{label: counts per bin}``)."""
    fig, ax = _plt().subplots(figsize=(6, 3))
    width = 0.8 / max(len(series), 1)
    for i, (label, counts) in enumerate(series.items()):
        bins = len(counts)
        ax.bar([(b + 0.1 + i * width) / bins for b in range(bins)], counts, width / bins, align="edge", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_behaviours(per_model: dict[str, dict[str, float]], path: Path) -> Path:
    """Grouped bars: per model, the share of answers showing each behaviour (``{model: {behaviour: share}}``)."""
    fig, ax = _plt().subplots(figsize=(6, 3))
    models = list(per_model)
    behaviours = list(next(iter(per_model.values()), {}))
    width = 0.8 / max(len(models), 1)
    for i, m in enumerate(models):
        xs = [x + i * width for x in range(len(behaviours))]
        ax.bar(xs, [100 * per_model[m][b] for b in behaviours], width, label=m)
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(len(behaviours))], behaviours)
    ax.set_ylabel("answers showing it (%)")
    ax.set_title("Behaviour cues in evaluation answers")
    ax.legend()
    return _save(fig, path)


def plot_trees(trees: list[dict[str, Any]], path: Path, max_trees: int = 4) -> bool:
    """Draw the stage-1 tree of the first ``max_trees`` problems side by side; False if there is none."""
    first = [(row["problem_id"], json.loads(row["trees_json"])[0]) for row in trees[:max_trees]]
    first = [(pid, t) for pid, t in first if t["nodes"]]
    if not first:
        return False
    fig, axes = _plt().subplots(1, len(first), figsize=(4.5 * len(first), 4), squeeze=False)
    for ax, (pid, tree) in zip(axes[0], first, strict=True):
        _draw_tree(ax, tree["nodes"])
        ax.set_title(pid, fontsize=9)
    _save(fig, path)
    return True


def _layout(nodes: list[dict[str, Any]]) -> dict[int, tuple[float, float]]:
    """x: leaves left to right in depth-first order, parents centred over their children; y: -depth."""
    children: dict[int | None, list[int]] = collections.defaultdict(list)
    for n in nodes:
        children[n["parent"]].append(n["id"])
    pos: dict[int, tuple[float, float]] = {}
    next_x = [0.0]

    def place(nid: int, depth: int) -> float:
        kids = children.get(nid, [])
        x = sum(place(c, depth + 1) for c in kids) / len(kids) if kids else next_x[0]
        if not kids:
            next_x[0] += 1.0
        pos[nid] = (x, -depth)
        return x

    for root in children[None]:
        place(root, 0)
    return pos


def _draw_tree(ax: Any, nodes: list[dict[str, Any]]) -> None:
    pos = _layout(nodes)
    root = (sum(p[0] for p in pos.values()) / len(pos), 1.0)  # the prompt
    colors = {"max": "#2CA02C", "min": "#D62728"}
    for n in nodes:
        x, y = pos[n["id"]]
        px, py = pos[n["parent"]] if n["parent"] is not None else root
        kept = colors.get(n["kept"])
        ax.plot([px, x], [py, y], color=kept or "#BBBBBB", lw=2 if kept else 0.8, zorder=1)
        ax.scatter([x], [y], s=30, color=kept or "#888888", zorder=2)
        ax.annotate(f"{n['reward']:.2f}", (x, y), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=6)
        if n["terminal"] and n["correct"] is not None:
            ax.annotate("✓" if n["correct"] else "✗", (x, y), textcoords="offset points", xytext=(0, -11),
                        ha="center", fontsize=9, color="#2CA02C" if n["correct"] else "#D62728")  # fmt: skip
    ax.scatter([root[0]], [root[1]], s=60, color="black", marker="s")
    ax.set_axis_off()
