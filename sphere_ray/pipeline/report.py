"""The run report: Markdown + PNGs in ``<output_dir>/report/``, and the interactive ``report.html`` beside them.

Sections: pairs per stage and level, reward distributions of chosen vs rejected, cost per pair, a few
search trees (candidates with their rewards, the kept max/min paths, right/wrong leaves), the DPO loss
curve, and the base vs trained Pass@1 table.
"""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path
from typing import Any

from sphere_ray.evaluation.report import markdown as eval_markdown
from sphere_ray.files import write_text
from sphere_ray.pipeline.html_report import PAIR_COLUMNS, build_html, round_data
from sphere_ray.pipeline.plots import plot_loss, plot_pairs, plot_rewards, plot_trees

__all__ = ["evaluation_section", "write_report"]


def write_report(cfg: Any, run: dict[str, Any], evaluation: dict[str, Any]) -> Path:
    """Write ``report/report.md`` and its figures; return the Markdown path."""
    folder = Path(cfg.output_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# sphere-ray run report\n\nRun folder: `{cfg.output_dir}` · rounds: {len(run['rounds'])} · "
             f"base model: `{cfg.base_model}` · wall time: {run['wall_seconds'] / 60:.1f} min\n"]  # fmt: skip
    lines.append("Interactive version (search trees, steps, pairs): [report.html](report.html)\n")
    html_rounds = []
    for record in run["rounds"]:
        trees, pairs = _round_tables(record)
        lines += _round_section(record, trees, pairs, folder)
        html_rounds.append(round_data(record["round"], record["policy"], trees, pairs))
    lines += evaluation_section("## Evaluation: base vs trained\n", evaluation, Path(run["eval"]), folder)
    html = build_html(f"sphere-ray run: {cfg.output_dir}", html_rounds, sorted(folder.glob("*.png")))
    write_text(folder / "report.html", html)
    return write_text(folder / "report.md", "\n".join(lines))


def evaluation_section(title: str, evaluation: dict[str, Any], eval_dir: Path, folder: Path) -> list[str]:
    """The evaluation's tables under ``title`` and its Pass@1 chart (copied into the report ``folder``)."""
    lines = [title, eval_markdown(evaluation)]
    png = eval_dir / "pass_at_1.png"
    if png.exists():
        shutil.copy(png, folder / "pass_at_1.png")
        lines.append("![Pass@1](pass_at_1.png)\n")
    return lines


def _round_tables(record: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The round's generation ``trees`` and ``pairs`` rows, read once for both the Markdown and the HTML report."""
    from sphere_ray.generation.store import OutputStore

    store = OutputStore(record["generate"])
    pairs = store.read("pairs", list(PAIR_COLUMNS)).to_pylist()
    return store.read("trees").to_pylist(), pairs


def _round_section(
    record: dict[str, Any], trees: list[dict[str, Any]], pairs: list[dict[str, Any]], folder: Path
) -> list[str]:
    k = record["round"]
    summary = json.loads(Path(record["generate"], "summary.json").read_text())
    out = [f"## Round {k}: policy `{record['policy']}`\n", _cost_table(summary, trees, len(pairs))]
    out += [_pairs_table(pairs)]
    if pairs:
        plot_pairs(pairs, folder / f"round{k}_pairs.png")
        plot_rewards(pairs, folder / f"round{k}_rewards.png")
        out += [f"![pairs](round{k}_pairs.png)\n", f"![rewards](round{k}_rewards.png)\n"]
    if trees and plot_trees(trees, folder / f"round{k}_trees.png"):
        out += ["Search trees (stage-1 tree of the first problems): each dot is a candidate step with its reward; "
                "green/red edges are the steps the max/min branches kept, grey ones were pruned; a leaf's ✓/✗ is "
                "its graded final answer.\n", f"![trees](round{k}_trees.png)\n"]  # fmt: skip
    out += _dpo_section(record, folder, k)
    return out


def _cost_table(summary: dict[str, Any], trees: list[dict[str, Any]], n_pairs: int) -> str:
    outcomes = ", ".join(f"{k}: {v}" for k, v in sorted(summary["outcomes"].items())) or "–"
    seconds = sum(t["seconds"] for t in trees)
    per_pair = lambda x: f"{x / n_pairs:.1f}" if n_pairs else "–"  # noqa: E731
    rows = [("problems", summary["problems_done"]), ("outcomes", outcomes), ("pairs", n_pairs),
            ("rejects", summary["rejects"]), ("generated tokens", summary["generated_tokens"]),
            ("tokens / pair", per_pair(summary["generated_tokens"])),
            ("PRM calls / pair", per_pair(summary["prm_calls"])),
            ("search seconds / pair (summed over problems)", per_pair(seconds))]  # fmt: skip
    return "| cost | value |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows) + "\n"


def _pairs_table(pairs: list[dict[str, Any]]) -> str:
    counts = collections.Counter((p["stage"], p["level"]) for p in pairs)
    if not counts:
        return "No pairs this round.\n"
    body = "\n".join(f"| {s} | {lvl} | {n} |" for (s, lvl), n in sorted(counts.items()))
    return "| stage | level | pairs |\n|---|---|---|\n" + body + "\n"


def _dpo_section(record: dict[str, Any], folder: Path, k: int) -> list[str]:
    if not record.get("dpo"):
        return ["No DPO this round (no pairs).\n"]
    history = json.loads(Path(record["dpo"], "metrics.json").read_text())
    plot_loss(history, folder / f"round{k}_dpo_loss.png")
    last = [h for h in history if "loss" in h][-1:]
    acc = f", final rewards/accuracies {last[0].get('rewards/accuracies', 0):.2f}" if last else ""
    return [f"DPO: best eval loss {record.get('best_eval_loss')}{acc}; model `{record['trained_model']}`.\n",
            f"![DPO loss](round{k}_dpo_loss.png)\n"]  # fmt: skip
