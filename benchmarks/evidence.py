"""Evidence that the loop works (P12): base -> SPHERE round 1 -> round 2, against two controls, on held-out problems.

1. **Rounds**: the pipeline recipe's rounds (``run_rounds``: generate pairs with the current policy, DPO, merge;
   the merged model is the next round's policy), on the easy-math curriculum's train split.
2. **Controls**, from round 1's generation (so at the same generated-token budget):
   * *shuffled DPO*: round 1's pairs with chosen and rejected swapped in a random half
     (:func:`sphere_ray.pairs.swap_sides`), trained with the same DPO settings: what DPO learns from the pairs'
     order rather than their content;
   * *RFT*: SFT (``recipes/sft_smollm2.yaml``'s settings) on each distinct model-written solution of round 1 that
     is right (:func:`sphere_ray.pairs.correct_samples`): rejection-sampling fine-tuning.
3. **Evaluation**: one eval job over every model on the held-out split (``evaluate`` section: several samples per
   problem, so Pass@1 is a mean over samples), each model against the base with a paired bootstrap 95% interval
   over problems, and each model's own Pass@1 interval.
4. **Learning-rate sweep** (``--lr-sweep``): DPO from the base on round 1's pairs at other learning rates,
   evaluated with the rest. **Stage ablations** (``--ablations``): DPO from the base on round 1's stage-1 pairs
   only, and on all but its stage-3 pairs.
5. **Diagnostics**: pairs per stage and the search's outcomes per round; the fraction of chosen sides known right;
   the PRM score margin of chosen over rejected; DPO's final ``rewards/margins`` and ``rewards/accuracies``; the
   boxed-answer rate and Pass@1 per problem kind (curriculum ``subject``) of every model.

Results: ``benchmarks/results/evidence.{md,json}`` and ``evidence.png``.

    python benchmarks/evidence.py --config recipes/evidence_smollm2.yaml [--rft-lr 1e-4] [--no-controls] \
        [--ablations] [--lr-sweep 1e-6,1e-5,5e-4]

Any other ``--field value`` is a pipeline override (as for ``sphere-ray run``). Rerunning resumes: each stage's
job resumes its own output folder.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from sphere_ray.config import load_yaml, parse_config
from sphere_ray.evaluation.metrics import bootstrap_diff, problem_accuracy
from sphere_ray.grading.forms import restates_question
from sphere_ray.pairs import correct_samples, read_pairs, swap_sides, write_pairs
from sphere_ray.pipeline.config import PipelineConfig, build_section
from sphere_ray.problems import load_problems

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
log = logging.getLogger("evidence")


def controls(cfg: PipelineConfig, base: str, rft_recipe: Path, rft_lr: float) -> dict[str, str]:
    """Train the shuffled-DPO and RFT controls on round 1's generation; ``{name: merged model folder}``."""
    import pyarrow.parquet as pq

    from sphere_ray.training.config import SFTJobConfig
    from sphere_ray.training.job import run_dpo_job, run_sft_job

    folder = Path(cfg.output_dir) / "controls"
    pairs = read_pairs(cfg.round_dir(1) / "generate" / "pairs")
    write_pairs(swap_sides(pairs, 0.5, seed=0), folder / "shuffled_pairs" / "part-0.parquet")
    shuffled = dataclasses.replace(cfg.train_config(1, base), pairs=str(folder / "shuffled_pairs"),
                                   output_dir=str(folder / "shuffled_dpo"))  # fmt: skip
    out = {"shuffled_dpo": run_dpo_job(shuffled)["outputs"]["merged"]}
    samples = correct_samples(pairs)
    log.info("RFT control: %d right model-written solutions in round 1", samples.num_rows)
    if samples.num_rows == 0:
        log.warning("RFT control skipped: round 1 wrote no right solution to train on")
        return out
    (folder / "rft_data").mkdir(parents=True, exist_ok=True)
    pq.write_table(samples, folder / "rft_data" / "part-0.parquet")
    values = {**load_yaml(SFTJobConfig, rft_recipe), "model": base, "data": str(folder / "rft_data"),
              "output_dir": str(folder / "rft"), "learning_rate": rft_lr, "eval_fraction": 0.0,
              "eval_strategy": "no", "packing": False, "merge": True}  # fmt: skip
    out["rft"] = run_sft_job(build_section(SFTJobConfig, "rft", values))["outputs"]["merged"]
    return out


ABLATIONS = {"stage1_only": (1,), "without_stage3": (1, 2)}
"""Stage ablation -> the stages whose round-1 pairs it trains on."""


def ablations(cfg: PipelineConfig, base: str) -> tuple[dict[str, str], dict[str, Any]]:
    """DPO from ``base`` on round 1's pairs of some stages only (:data:`ABLATIONS`), same DPO settings.

    Returns ``({name: merged model folder}, {name: pairs used, or why it was skipped})``. An ablation is skipped
    when its subset has fewer than 4 pairs (too few to split and train) or is all of round 1's pairs (the same
    model as round 1).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from sphere_ray.training.job import run_dpo_job

    pairs = read_pairs(cfg.round_dir(1) / "generate" / "pairs")
    folder, models, info = Path(cfg.output_dir) / "ablations", {}, {}
    for name, stages in ABLATIONS.items():
        subset = pairs.filter(pc.is_in(pairs["stage"], value_set=pa.array(stages, pairs["stage"].type)))
        if subset.num_rows < 4 or subset.num_rows == pairs.num_rows:
            info[name] = f"skipped: {subset.num_rows} of round 1's {pairs.num_rows} pairs are from stages {stages}"
            log.warning("ablation %s %s", name, info[name])
            continue
        write_pairs(subset, folder / f"{name}_pairs" / "part-0.parquet")
        job = dataclasses.replace(cfg.train_config(1, base), pairs=str(folder / f"{name}_pairs"),
                                  output_dir=str(folder / name))  # fmt: skip
        try:
            models[name], info[name] = run_dpo_job(job)["outputs"]["merged"], {"pairs": subset.num_rows}
        except ValueError as e:  # e.g. too few problems to split: report it, keep the rest of the run
            info[name] = f"failed on {subset.num_rows} pairs: {e}"
            log.warning("ablation %s %s", name, info[name])
    return models, info


def lr_sweep(cfg: PipelineConfig, base: str, rates: list[float]) -> dict[str, str]:
    """DPO from ``base`` on round 1's pairs at each learning rate (the train section's other settings as they are);
    ``{dpo_lr<rate>: merged model folder}``. Round 1's own rate is round 1's model, not trained again."""
    from sphere_ray.training.job import run_dpo_job

    round1, out = cfg.train_config(1, base), {}
    for rate in rates:
        if rate == round1.learning_rate:
            continue
        folder = Path(cfg.output_dir) / "sweep" / f"lr{rate:g}"
        job = dataclasses.replace(round1, learning_rate=rate, output_dir=str(folder))
        out[sweep_name(rate)] = run_dpo_job(job)["outputs"]["merged"]
    return out


def sweep_name(rate: float) -> str:
    """The sweep model trained at ``rate``: ``dpo_lr1e-05``."""
    return f"dpo_lr{rate:g}"


def evaluate(cfg: PipelineConfig, models: dict[str, str]) -> dict[str, Any]:
    """One eval job over ``models`` (name -> model), the first being the base (the pipeline's eval settings).

    The models share one architecture, so one app is deployed and each model's weights are loaded into it in
    turn (``swap_weights``) instead of a vLLM app deployed per model.
    """
    from sphere_ray.evaluation.job import run_eval_job

    specs = [{"name": n, "model": m} for n, m in models.items()]
    return run_eval_job(dataclasses.replace(cfg.eval_config(None), models=specs, swap_weights=True))


def round_diagnostics(record: dict[str, Any]) -> dict[str, Any]:
    """Stage mix, outcomes, chosen-side correctness and margins of one round; DPO's final reward metrics."""
    gen = Path(record["generate"])
    summary = json.loads((gen / "summary.json").read_text()) if (gen / "summary.json").exists() else {}
    rows = read_pairs(gen / "pairs").to_pylist() if record["pairs"] else []
    known = [r["chosen_correct"] for r in rows if r["chosen_correct"] is not None]
    out = {"policy": record["policy"], "pairs": record["pairs"], "outcomes": summary.get("outcomes", {}),
           "pairs_by_stage_level": summary.get("pairs_by_stage_level", {}),
           "chosen_known_right": round(sum(known) / len(rows), 3) if rows else None,
           "chosen_from_reference": sum(r["chosen_model"] == "reference" for r in rows),
           "score_margin_mean": round(sum(r["chosen_score"] - r["rejected_score"] for r in rows) / len(rows), 4)
           if rows else None}  # fmt: skip
    if record.get("dpo"):
        out["dpo"] = dpo_diagnostics(Path(record["dpo"]))
    return out


def dpo_diagnostics(folder: Path) -> dict[str, Any]:
    """The last logged ``rewards/margins`` and ``rewards/accuracies`` of a DPO run, and its best eval loss."""
    history = json.loads((folder / "metrics.json").read_text())
    train = [h for h in history if "rewards/margins" in h]
    last = train[-1] if train else {}
    summary = json.loads((folder / "summary.json").read_text())
    return {
        "steps": summary.get("final_step"),
        "rewards/margins": last.get("rewards/margins"),
        "rewards/accuracies": last.get("rewards/accuracies"),
        "best_eval_loss": summary.get("best_eval_loss"),
    }


def eval_rows(eval_dir: Path, model: str) -> list[dict[str, Any]]:
    """A model's evaluation rows."""
    return [json.loads(line) for f in sorted((eval_dir / model).glob("*.jsonl")) for line in f.open()]


def strict(rows: list[dict[str, Any]], questions: dict[str, str]) -> list[dict[str, Any]]:
    """The rows with a right row whose answer restates the question's arithmetic counted wrong.

    The rule is :func:`~sphere_ray.grading.forms.restates_question` (``13 + 9`` for "What is 13 + 9?"), which the
    grader itself now applies; rows of a run graded before it may not have.
    """
    return [{**r, "correct": bool(r["correct"]) and not _restated(r, questions)} for r in rows]


def _restated(row: dict[str, Any], questions: dict[str, str]) -> bool:
    return bool(row["extracted"]) and restates_question(row["extracted"], questions.get(row["problem_id"], ""))


def score_models(
    eval_dir: Path, models: list[str], subjects: dict[str, str], questions: dict[str, str]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each model's diagnostics, and its strict Pass@1 against the first model's (the base), each model's
    evaluation rows read once."""
    rows = {n: eval_rows(eval_dir, n) for n in models}
    strict_rows = {n: strict(r, questions) for n, r in rows.items()}
    return {n: model_diagnostics(rows[n], strict_rows[n], subjects) for n in models}, strict_vs_base(strict_rows)


def strict_vs_base(strict_rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each model's strict Pass@1 against the first model's (paired bootstrap over problems, 95%)."""
    (_, base_rows), *others = strict_rows.items()
    base = problem_accuracy(base_rows)
    out = {}
    for name, rows in others:
        diff, low, high = bootstrap_diff(base, problem_accuracy(rows), 2000, seed=0)
        out[name] = {"diff": round(diff, 4), "ci95": [round(low, 4), round(high, 4)]}
    return out


def model_diagnostics(
    rows: list[dict[str, Any]], strict_rows: list[dict[str, Any]], subjects: dict[str, str]
) -> dict[str, Any]:
    """Boxed-answer rate, Pass@1 with its own 95% interval, its strict form, and Pass@1 per problem kind."""
    if not rows:
        return {}
    acc = problem_accuracy(rows)
    strict_acc = problem_accuracy(strict_rows)
    mean, low, high = bootstrap_diff(dict.fromkeys(acc, 0.0), acc, 2000, seed=0)
    by_kind: dict[str, list[bool]] = collections.defaultdict(list)
    for r in rows:
        by_kind[subjects.get(r["problem_id"], "other")].append(bool(r["correct"]))
    boxed = [r for r in rows if "\\boxed" in r["output"]]
    right = sum(bool(r["correct"]) for r in rows)
    return {"samples": len(rows), "problems": len(acc), "pass@1": round(mean, 4), "pass@1_ci95": [low, high],
            "boxed_rate": round(len(boxed) / len(rows), 3),
            "right_when_boxed": round(sum(bool(r["correct"]) for r in boxed) / len(boxed), 3) if boxed else None,
            "mean_tokens": round(sum(r["num_tokens"] for r in rows) / len(rows), 1),
            "right_unevaluated": right - sum(bool(r["correct"]) for r in strict_rows),
            "strict_pass@1": round(sum(strict_acc.values()) / len(strict_acc), 4),
            "pass@1_by_kind": {k: round(sum(v) / len(v), 3) for k, v in sorted(by_kind.items())}}  # fmt: skip


def markdown(result: dict[str, Any]) -> str:
    """The results page."""
    lines = [
        "# Evidence: SPHERE self-evolution on the easy-math curriculum (SmolLM2-135M, CPU)\n",
        result["meta"] + "\n",
        "## Held-out Pass@1\n",
        "| model | Pass@1 | 95% interval | vs base | paired 95% interval | boxed | right when boxed | mean tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, m in result["models"].items():
        cmp = result["vs_base"].get(name)
        diff = f"{cmp['diff']:+.3f} | [{cmp['ci95'][0]:+.3f}, {cmp['ci95'][1]:+.3f}]" if cmp else "— | —"
        lines.append(f"| {name} | {m['pass@1']:.3f} | [{m['pass@1_ci95'][0]:.3f}, {m['pass@1_ci95'][1]:.3f}] | "
                     f"{diff} | {m['boxed_rate']:.2f} | {m.get('right_when_boxed')} | "
                     f"{m.get('mean_tokens')} |")  # fmt: skip
    if result.get("strict_vs_base"):
        lines += ["\n## Strict Pass@1 (an answer restating the question's arithmetic, `13 + 9`, counts wrong)\n",
                  "| model | right samples | right but restating | strict Pass@1 | strict vs base | paired 95% "
                  "interval |", "|---|---|---|---|---|---|"]  # fmt: skip
        for name, m in result["models"].items():
            cmp = result["strict_vs_base"].get(name)
            diff = f"{cmp['diff']:+.3f} | [{cmp['ci95'][0]:+.3f}, {cmp['ci95'][1]:+.3f}]" if cmp else "— | —"
            right = round(m["pass@1"] * m["samples"])
            lines.append(f"| {name} | {right} | {m['right_unevaluated']} | {m['strict_pass@1']:.3f} | {diff} |")
    kinds = sorted({k for m in result["models"].values() for k in m["pass@1_by_kind"]})
    lines += ["\n## Pass@1 by problem kind\n", "| model | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for name, m in result["models"].items():
        lines.append(f"| {name} | " + " | ".join(f"{m['pass@1_by_kind'].get(k, 0):.2f}" for k in kinds) + " |")
    lines += ["\n## Rounds\n", "| round | policy | pairs | stage/level | outcomes | chosen right | PRM margin | "
              "DPO rewards/margins | DPO rewards/accuracies |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for k, r in enumerate(result["rounds"], 1):
        dpo = r.get("dpo", {})
        lines.append(f"| {k} | `{r['policy']}` | {r['pairs']} | {r['pairs_by_stage_level']} | {r['outcomes']} | "
                     f"{r['chosen_known_right']} | {r['score_margin_mean']} | {dpo.get('rewards/margins')} | "
                     f"{dpo.get('rewards/accuracies')} |")  # fmt: skip
    if result.get("sweep_dpo"):
        lines += ["\n## DPO learning-rate sweep (round 1's pairs, from the base)\n",
                  "| model | learning rate | Pass@1 | vs base | DPO rewards/margins | DPO rewards/accuracies |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for name, rate in sorted(result["lr_sweep"].items(), key=lambda kv: kv[1]):
            dpo = result["rounds"][0].get("dpo", {}) if name == "round1" else result["sweep_dpo"].get(name, {})
            cmp, m = result["vs_base"].get(name, {}), result["models"].get(name, {})
            lines.append(f"| {name} | {rate:g} | {m.get('pass@1')} | {cmp.get('diff')} | "
                         f"{dpo.get('rewards/margins')} | {dpo.get('rewards/accuracies')} |")  # fmt: skip
    if result.get("ablations"):
        lines += ["\n## Stage ablations (round 1's pairs of some stages, from the base)\n", "```json",
                  json.dumps(result["ablations"], indent=2), "```"]  # fmt: skip
    lines += ["\n## Controls\n", "```json", json.dumps(result["controls"], indent=2), "```", "",
              f"![Pass@1 per model](evidence.png)\n\nWall time of this invocation: {result['wall_minutes']} min "
              "(a rerun resumes the stages already done).\n"]  # fmt: skip
    if result.get("reading"):  # written after the run, kept in evidence.json so --rescore keeps it
        lines += ["## Reading\n", result["reading"]]
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> None:
    """Pass@1 per model with its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["models"])
    means = [result["models"][n]["pass@1"] for n in names]
    errs = [[m - result["models"][n]["pass@1_ci95"][0] for n, m in zip(names, means, strict=True)],
            [result["models"][n]["pass@1_ci95"][1] - m for n, m in zip(names, means, strict=True)]]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(names, means, yerr=errs, capsize=4, color=["#888"] + ["#3a7"] * (len(names) - 1))
    ax.set_ylabel("held-out Pass@1")
    ax.set_title("Pass@1 (mean over samples) with bootstrap 95% intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:

    from sphere_ray.cluster import connect_ray
    from sphere_ray.files import write_json, write_text
    from sphere_ray.pipeline.run import run_rounds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rft-recipe", type=Path, default=ROOT / "recipes" / "sft_smollm2.yaml")
    parser.add_argument("--rft-lr", type=float, default=1e-4, help="RFT's learning rate (LoRA SFT)")
    parser.add_argument("--no-controls", action="store_true", help="rounds and their evaluation only")
    parser.add_argument("--ablations", action="store_true", help="stage ablations: DPO on round 1's stage-1 pairs "
                        "only, and on all but its stage-3 pairs")  # fmt: skip
    parser.add_argument("--lr-sweep", type=lambda v: [float(x) for x in v.split(",") if x], default=[],
                        help="DPO learning rates (a,b,...), each trained on round 1's pairs from the base")  # fmt: skip
    parser.add_argument("--rescore", action="store_true", help="recompute the diagnostics of the run in "
                        "evidence.json from its outputs (no training, no evaluation), rewrite the results")  # fmt: skip
    args, rest = parser.parse_known_args(argv)
    cfg = parse_config(PipelineConfig, rest)
    if args.rescore:
        return rescore(cfg)
    logging.basicConfig(level=cfg.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    start = time.monotonic()
    connect_ray(cfg.ray_address)
    rounds, _ = run_rounds(cfg, cfg.base_model)
    models = {"base": cfg.base_model}
    models.update({f"round{r['round']}": r["trained_model"] for r in rounds if r.get("trained_model")})
    trained_controls = (
        {} if args.no_controls or len(models) == 1 else controls(cfg, cfg.base_model, args.rft_recipe, args.rft_lr)
    )
    models.update(trained_controls)
    ablated, ablation_info = ({}, {}) if not args.ablations or len(models) == 1 else ablations(cfg, cfg.base_model)
    models.update(ablated)
    swept = lr_sweep(cfg, cfg.base_model, args.lr_sweep) if len(models) > 1 else {}
    models.update(swept)
    summary = evaluate(cfg, models)
    eval_dir = Path(cfg.output_dir) / "eval"
    subjects, questions = problem_maps(summary["benchmarks"])
    control_info = {n: dpo_diagnostics(Path(m).parent) for n, m in trained_controls.items() if n == "shuffled_dpo"}
    if "rft" in trained_controls:
        rft = json.loads((Path(trained_controls["rft"]).parent / "summary.json").read_text())
        control_info["rft"] = {"samples": rft["data"], "steps": rft["final_step"], "learning_rate": args.rft_lr}
    comparison = summary["comparison"] or {}
    diagnostics, strict_cmp = score_models(eval_dir, list(models), subjects, questions)
    held_out = diagnostics["base"].get("problems")
    result = {
        "meta": f"Recipe `{' '.join(rest)}`; held-out: {summary['benchmarks']} ({held_out} problems, "
                f"{cfg.evaluate.get('samples', 1)} samples each, T={cfg.evaluate.get('temperature', 0.1)}); "
                f"{len(rounds)} round(s); {'no controls' if args.no_controls else 'controls from round 1'}.",
        "models": diagnostics,
        "vs_base": {n: next(iter(c.values())) for n, c in comparison.items() if c}, "strict_vs_base": strict_cmp,
        "rounds": [round_diagnostics(r) for r in rounds], "controls": control_info,
        "ablations": {n: {**(i if isinstance(i, dict) else {"note": i}),
                          **({"dpo": dpo_diagnostics(Path(ablated[n]).parent)} if n in ablated else {})}
                      for n, i in ablation_info.items()},
        "lr_sweep": {"round1": cfg.train_config(1, cfg.base_model).learning_rate,
                     **{sweep_name(r): r for r in args.lr_sweep if sweep_name(r) in swept}},
        "sweep_dpo": {n: dpo_diagnostics(Path(m).parent) for n, m in swept.items()},
        "wall_minutes": round((time.monotonic() - start) / 60, 1), "eval_summary": summary["scores"],
    }  # fmt: skip
    write_json(OUT / "evidence.json", result)
    plot(result, OUT / "evidence.png")
    write_text(OUT / "evidence.md", markdown(result))
    print(markdown(result))
    return 0


def problem_maps(benchmarks: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Problem id -> kind (curriculum ``subject``) and problem id -> question text, over ``benchmarks``."""
    problems = [p for spec in benchmarks for p in load_problems(spec).problems]
    return {p.id: p.subject or "other" for p in problems}, {p.id: p.problem for p in problems}


def rescore(cfg: PipelineConfig) -> int:
    """Recompute every model's diagnostics and the strict comparison from ``cfg.output_dir``'s evaluation rows."""
    from sphere_ray.files import write_json, write_text

    result = json.loads((OUT / "evidence.json").read_text())
    eval_dir = Path(cfg.output_dir) / "eval"
    subjects, questions = problem_maps(cfg.evaluate.get("benchmarks", []))
    result["models"], result["strict_vs_base"] = score_models(eval_dir, list(result["models"]), subjects, questions)
    write_json(OUT / "evidence.json", result)
    write_text(OUT / "evidence.md", markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
