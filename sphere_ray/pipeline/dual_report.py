"""The Dual-Phase SFT run report: Markdown + PNGs in ``<output_dir>/report/``.

Sections: phase 1 (acceptance overall, by filter and by template; first- and last-turn accuracy;
error-correction chains), each SFT run (data, best eval loss, loss curve), phase 2 (pass-rate histogram
of the problems before and of the kept samples after the difficulty-aware allocation; never-solved
problems), the equal-budget baseline, optional SPHERE rounds from pi_rej, and the evaluation: Pass@1 of
every model with paired bootstrap intervals against the base, self-correction, and the answers' chain
length (ratio to the base's), boxed-answer rate and behaviour frequency (cue detector) per model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sphere_ray.dialogue.behaviours import behaviour_counts
from sphere_ray.dialogue.templates import BEHAVIOURS
from sphere_ray.pipeline.plots import plot_behaviours, plot_histograms, plot_loss
from sphere_ray.pipeline.report import evaluation_section

__all__ = ["answer_stats", "write_report"]

TITLES = {"sft": "pi_sft: SFT on the phase-1 samples", "rej": "pi_rej: SFT on the phase-2 samples",
          "rft": "pi_rft (baseline): SFT on the rejection-sampled one-turn answers"}  # fmt: skip


def write_report(cfg: Any, run: dict[str, Any], evaluation: dict[str, Any]) -> Path:
    """Write ``report/report.md`` and its figures; return the Markdown path."""
    folder = Path(cfg.output_dir) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    stages = run["stages"]
    lines = [
        "# Dual-Phase SFT run report\n",
        f"Run folder: `{cfg.output_dir}` · base model: `{cfg.base_model}` · pi_rej from: {cfg.rej_from} · "
        f"wall time: {run['wall_seconds'] / 60:.1f} min\n",
        _table(["model", "path"], [[n, f"`{m}`"] for n, m in run["models"].items()]),
    ]
    lines += [f"Skipped: {s}.\n" for s in run["skipped"]]
    lines += _phase1(stages["phase1"]["summary"])
    for stage in ("sft", "rej", "rft"):
        if stage == "rej" and "phase2" in stages:
            lines += _phase2(stages["phase2"]["summary"], folder)
        if stage == "rft" and "rft_data" in stages:
            lines += _baseline(run, stages["rft_data"]["summary"])
        if stage in stages:
            lines += _sft(stage, stages[stage], folder)
    if "sphere" in stages:
        lines += _sphere(stages["sphere"])
    eval_dir = Path(cfg.output_dir) / "eval"
    lines += evaluation_section("## Evaluation\n", evaluation, eval_dir, folder)
    lines += _answers(eval_dir, evaluation["models"], folder)
    path = folder / "report.md"
    path.write_text("\n".join(lines))
    return path


def _table(head: list[str], rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(out + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]) + "\n"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _phase1(s: dict[str, Any]) -> list[str]:
    acc = s["acceptance"]
    rows = [["problems", s["problems_done"]], ["dialogues (samples)", s["samples"]], ["kept", s["kept"]],
            ["acceptance", _pct(acc["rate"])], ["first-turn accuracy", _pct(s["first_turn_accuracy"])],
            ["last-turn accuracy", _pct(s["final_turn_accuracy"])],
            ["error-correction chains (wrong, then right)", s["error_correction_chains"]],
            ["... of them kept", s["kept_error_correction_chains"]],
            ["kept samples by turns", ", ".join(f"{k} turns: {v}" for k, v in sorted(s["kept_turns"].items())) or "–"],
            ["mean tokens of a kept sample", s["kept_mean_tokens"] or "–"], ["generated tokens", s["generated_tokens"]],
            ["problems never solved", s["problems_never_solved"]]]  # fmt: skip
    out = ["## Phase 1: multi-turn dialogues of the base model\n", _table(["", "value"], rows)]
    out += ["Acceptance by filter (each rule judged on every sample):\n",
            _table(["filter", "pass rate"], [[f, _pct(r)] for f, r in acc["by_filter"].items()])]  # fmt: skip
    templates = [[t, v["samples"], v["kept"], _pct(v["rate"])] for t, v in acc["by_template"].items()]
    out += ["Acceptance by template:\n", _table(["template", "samples", "kept", "rate"], templates)]
    if s.get("judge"):
        agree = ", ".join(f"{b} {_pct(v)}" for b, v in s["judge"]["agreement_with_cues"].items())
        out.append(f"LLM judge: {s['judge']['samples_judged']} of {s['judge']['samples']} samples judged; "
                   f"agreement with the cue detector: {agree}.\n")  # fmt: skip
    return out


def _phase2(s: dict[str, Any], folder: Path) -> list[str]:
    a = s["allocation"]
    rows = [["problems", a["problems"]], ["samples drawn", s["samples"]],
            ["rule-passing correct samples", a["candidates"]], ["strategy", a["strategy"]],
            ["target samples", a["target_samples"]], ["kept (allocated)", a["selected"]],
            ["kept tokens", a["selected_tokens"]], ["never solved", a["never_solved"]],
            ["generated tokens", s["generated_tokens"]]]  # fmt: skip
    hist = a["pass_rate_histogram"]
    plot_histograms({"problems (before)": hist["before"], "kept samples (after)": hist["after"]},
                    folder / "phase2_difficulty.png", "pi_sft pass rate of the problem",
                    "Difficulty before and after re-sampling")  # fmt: skip
    return ["## Phase 2: difficulty-aware rejection sampling with pi_sft\n", _table(["", "value"], rows),
            "Pass-rate histogram (10 bins over [0, 1]): the problems as estimated, and the problems of the kept "
            "samples, one count per sample.\n",
            _table(["pass rate", *(f"{b / 10:.1f}–{(b + 1) / 10:.1f}" for b in range(10))],
                   [["before (problems)", *hist["before"]], ["after (kept samples)", *hist["after"]]]),
            "![difficulty](phase2_difficulty.png)\n"]  # fmt: skip


def _baseline(run: dict[str, Any], s: dict[str, Any]) -> list[str]:
    budget, a = run["rft_budget"], s["allocation"]
    rows = [["token budget (phase 1 + phase 2)", budget["dual_phase_tokens"]],
            ["budget per problem", budget["per_problem"]], ["generated tokens", s["generated_tokens"]],
            ["samples drawn", s["samples"]], ["correct, well-formed samples kept", a["selected"]],
            ["problems never solved", a["never_solved"]]]  # fmt: skip
    return ["## Baseline: rejection-sampling fine-tuning at the same token budget\n",
            "One-turn answers of the base model, no dialogue, no difficulty allocation: every correct, well-formed "
            "answer is kept (rules final_correct, one_final_answer, not_truncated).\n",
            _table(["", "value"], rows)]  # fmt: skip


def _sft(stage: str, record: dict[str, Any], folder: Path) -> list[str]:
    s = record["summary"]
    data = s["data"]
    out = [f"## {TITLES[stage]}\n",
           f"From `{record['start_model']}`; samples: {json.dumps(data)}; best eval loss: {s.get('best_eval_loss')}; "
           f"{s['wall_seconds']:.0f} s.\n"]  # fmt: skip
    history_path = Path(record["output_dir"]) / "metrics.json"
    if history_path.exists():
        plot_loss(json.loads(history_path.read_text()), folder / f"{stage}_loss.png", ylabel="SFT loss")
        out.append(f"![{stage} loss]({stage}_loss.png)\n")
    return out


def _sphere(record: dict[str, Any]) -> list[str]:
    rows = [[r["round"], r["policy"], r["pairs"], r.get("trained_model") or "–"] for r in record["rounds"]]
    return ["## SPHERE from pi_rej\n", _table(["round", "policy", "pairs", "trained model"], rows)]


def answer_stats(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean tokens, boxed-answer rate, and per behaviour the share of answers with a cue and cues per answer."""
    n = len(rows) or 1
    counts = [behaviour_counts(r["output"]) for r in rows]
    return {
        "answers": len(rows), "mean_tokens": sum(r["num_tokens"] for r in rows) / n,
        "answered": sum(bool(r["extracted"]) for r in rows) / n,
        "share": {b: sum(c[b] > 0 for c in counts) / n for b in BEHAVIOURS},
        "per_answer": {b: sum(c[b] for c in counts) / n for b in BEHAVIOURS},
    }  # fmt: skip


def _answers(eval_dir: Path, models: list[str], folder: Path) -> list[str]:
    stats = {m: answer_stats(_rows(eval_dir / m)) for m in models}
    base = stats[models[0]]["mean_tokens"] or 1.0
    head = ["model", "answers", "mean tokens", "length ÷ base", "stated an answer",
            *(f"{b} (share; per answer)" for b in BEHAVIOURS)]  # fmt: skip
    rows = [[m, s["answers"], f"{s['mean_tokens']:.0f}", f"{s['mean_tokens'] / base:.2f}", _pct(s["answered"]),
             *(f"{_pct(s['share'][b])}; {s['per_answer'][b]:.2f}" for b in BEHAVIOURS)]
            for m, s in stats.items()]  # fmt: skip
    plot_behaviours({m: s["share"] for m, s in stats.items()}, folder / "behaviours.png")
    return ["## Chain length and behaviours of the evaluation answers\n",
            "Every first answer of the evaluation (all benchmarks): generated tokens, the share that states a final "
            "answer, and the behaviour cues (the cue detector of `sphere_ray/dialogue/behaviours.py`).\n",
            _table(head, rows), "![behaviours](behaviours.png)\n"]  # fmt: skip


def _rows(folder: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows
