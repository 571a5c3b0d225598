"""The evaluation job: models x benchmarks -> Serve app per model -> Ray Data fan-out -> graded rows -> report.

For each model (a LoRA adapter is merged into its base first, so vLLM serves plain weights), the job deploys
one generation app copied from ``serve_template`` (or uses a running app), streams every problem of every
benchmark through a Ray Data actor pool (:class:`~sphere_ray.evaluation.worker.EvalWorker`) and writes:

``<output_dir>/<model>/<benchmark>.jsonl``  one row per sample: problem id, raw output, extracted answer,
                                          correct; with self-correction the revised output, answer, correct
``<output_dir>/<model>/done.json``        the model's settings hash and errors: a rerun (``resume``) reuses
                                          the rows of a model done with the same settings
``<output_dir>/errors.jsonl``             problems that failed after retries, with the error
``<output_dir>/summary.json``             scores per model and benchmark (see :mod:`.metrics`), ``comparison``:
                                          every later model against the first, per benchmark
``<output_dir>/report.md``, ``pass_at_1.png``   the table and the bar chart
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

from sphere_ray.config import stable_hash
from sphere_ray.evaluation.config import EvalJobConfig, ModelSpec
from sphere_ray.evaluation.metrics import compare, score
from sphere_ray.evaluation.report import bar_chart, markdown
from sphere_ray.evaluation.worker import EvalWorker
from sphere_ray.files import write_json, write_jsonl, write_text
from sphere_ray.generation.progress import EvalProgress
from sphere_ray.problems import load_problems
from sphere_ray.serving.launch import app_running

__all__ = ["load_benchmarks", "reused_rows", "run_eval_job", "settings_key"]

log = logging.getLogger(__name__)

SHARED_APP = "eval-models"
"""The app that ``swap_weights`` with ``start_serve`` deploys once and loads every model into."""


def run_eval_job(cfg: EvalJobConfig) -> dict[str, Any]:
    """Evaluate every model on every benchmark on the connected (or a new local) Ray cluster; return the summary."""
    from sphere_ray.cluster import connect_ray

    connect_ray(cfg.ray_address)
    start = time.monotonic()
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    problems, labels = load_benchmarks(cfg.benchmarks, cfg.limit)
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for spec in cfg.model_specs():
        key = settings_key(cfg, spec)
        done = reused_rows(out / spec.name, key, labels) if cfg.resume else None
        if done is not None:
            log.info("%s: evaluated before with the same settings; its rows are reused (resume: false redoes it)",
                     spec.name)  # fmt: skip
            model_rows, model_errors = done
        else:
            model_rows, model_errors = _evaluate_model(cfg, spec, problems)
            _write_jsonl_by_benchmark(out / spec.name, model_rows, labels)
            write_json(out / spec.name / "done.json", {"settings": key, "errors": model_errors})  # last: the marker
        rows += model_rows
        errors += model_errors
    if cfg.start_serve and cfg.swap_weights and app_running(SHARED_APP):
        from ray import serve

        serve.delete(SHARED_APP)  # the one app every model was loaded into
    write_jsonl(out / "errors.jsonl", errors)
    summary = summarize(cfg, rows, labels, errors, time.monotonic() - start)
    write_json(out / "summary.json", summary)
    write_text(out / "report.md", markdown(summary))
    bar_chart(summary, out / "pass_at_1.png")
    return summary


def settings_key(cfg: EvalJobConfig, spec: ModelSpec) -> str:
    """A hash of what a model's rows depend on: the model (and adapter), the problems and the sampling."""
    fields = ("benchmarks", "limit", "samples", "temperature", "top_p", "top_k", "max_tokens", "seed",
              "self_correction")  # fmt: skip
    values = {"model": _fingerprint(spec.model), "adapter": _fingerprint(spec.adapter),
              **{f: getattr(cfg, f) for f in fields}}  # fmt: skip
    return stable_hash(values)


def _fingerprint(model: str | None) -> Any:
    """A name as is; a local folder as its path plus its files' names, sizes and times (retrained weights differ)."""
    if model is None or not Path(model).is_dir():
        return model
    files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in Path(model).iterdir() if f.is_file())
    return [str(Path(model).resolve()), files]


def reused_rows(folder: Path, key: str, labels: list[str]) -> tuple[list[dict], list[dict]] | None:
    """``(rows, errors)`` of a model evaluated in ``folder`` with settings ``key``, or None (not done, other settings).

    ``done.json`` is written after the model's JSONL files, so its presence means they are whole.
    """
    try:
        done = json.loads((folder / "done.json").read_text())
        if done.get("settings") != key:
            return None
        rows = [json.loads(line) for label in labels for line in (folder / f"{label}.jsonl").read_text().splitlines()]
    except (OSError, ValueError):
        return None
    return rows, list(done.get("errors", []))


def load_benchmarks(specs: list[str], limit: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Problems of every benchmark as rows (``id, problem, answer, benchmark, index``) and the benchmark labels.

    Raises:
        ValueError: an unknown benchmark, or one with no valid problem.
    """
    rows, labels = [], []
    for spec in specs:
        label = Path(spec).stem if ("/" in spec or "." in spec) else spec
        loaded = load_problems(spec, limit)
        if loaded.rejects:
            log.warning("%s: %d malformed rows skipped (first: %s)", label, len(loaded.rejects), loaded.rejects[0])
        if not loaded.problems:
            raise ValueError(f"benchmarks: {spec!r} has no valid problem")
        labels.append(label)
        rows += [{"id": p.id, "problem": p.problem, "answer": p.answer, "benchmark": label, "index": i}
                 for i, p in enumerate(loaded.problems)]  # fmt: skip
    return rows, labels


def _evaluate_model(cfg: EvalJobConfig, spec: ModelSpec, problems: list[dict[str, Any]]) -> tuple[list, list]:
    import ray

    app = _serve(cfg, spec)
    sampling = {"n": cfg.samples, "temperature": cfg.temperature, "top_p": cfg.top_p, "top_k": cfg.top_k,
                "max_tokens": cfg.max_tokens, "seed": cfg.seed}  # fmt: skip
    compute = ray.data.ActorPoolStrategy(
        size=cfg.num_actors, max_tasks_in_flight_per_actor=cfg.calls_in_flight,
        max_concurrent_calls_per_actor=cfg.calls_in_flight,
    )  # fmt: skip
    # a dead actor is restarted and its rows retried (Ray Data's defaults), as in the generation job
    ds = ray.data.from_items(problems, override_num_blocks=min(len(problems), 256)).map(
        EvalWorker, compute=compute, num_cpus=0.25,
        fn_constructor_kwargs={"app": app, "model": spec.name, "sampling": sampling,
                               "self_correction": cfg.self_correction},
    )  # fmt: skip
    rows, errors = [], []
    progress = EvalProgress(len(problems), cfg.progress_every_s, metrics="sphere_eval")
    progress.start_heartbeat()
    log.info("evaluating %s on %d problems", spec.name, len(problems))
    try:
        for r in ds.iter_rows():
            if r["error"]:
                errors.append({"model": spec.name, "problem_id": r["problem_id"], "benchmark": r["benchmark"],
                               "error": r["error"]})  # fmt: skip
            payload = json.loads(r["payload"])
            rows += payload
            progress.update(payload, r["error"])
    finally:
        progress.stop()
        if cfg.start_serve and not cfg.swap_weights:
            from ray import serve

            serve.delete(app)  # free the replica for the next model
    return rows, errors


def _serve(cfg: EvalJobConfig, spec: ModelSpec) -> str:
    """The Serve app answering for ``spec``: deployed from the template, or the running one named in ``apps``."""
    if not cfg.start_serve and not cfg.swap_weights:
        return cfg.apps[spec.name]
    from sphere_ray.models.embedded import resolve_model

    model = resolve_model(spec.model)
    if spec.adapter:
        from sphere_ray.training.export import merge_adapter

        model = str(merge_adapter(model, spec.adapter, Path(cfg.output_dir, "models", spec.name)))
    target = cfg.apps[spec.name] if not cfg.start_serve else SHARED_APP
    if cfg.swap_weights and (not cfg.start_serve or app_running(SHARED_APP)):
        from sphere_ray.serving.launch import swap_weights

        model = str(Path(model).resolve()) if Path(model).is_dir() else model  # replicas may run elsewhere
        log.info("loading %s's weights into the running %s app (%s)", spec.name, target, model)
        swap_weights(target, model, spec.name, cfg.serve_timeout_s)
        return target
    from sphere_ray.serving.launch import deploy_config, single_app_config

    app = SHARED_APP if cfg.swap_weights else f"eval-{spec.name}"
    config = single_app_config(cfg.serve_template, cfg.serve_app, app, {"model": model, "served_model_name": spec.name})
    log.info("deploying %s for %s (%s)", app, spec.name, model)
    deploy_config(config, cfg.serve_timeout_s, keep_running=True)  # other apps (e.g. the generation job's) stay up
    return app


def summarize(
    cfg: EvalJobConfig, rows: list[dict[str, Any]], labels: list[str], errors: list[dict[str, Any]], seconds: float
) -> dict[str, Any]:
    """Scores per model and benchmark, each later model compared with the first, and the run's settings."""
    models = [s.name for s in cfg.model_specs()]
    scores = {m: {b: score([r for r in rows if r["model"] == m and r["benchmark"] == b]) for b in labels}
              for m in models}  # fmt: skip
    comparison = {m: compare(rows, models[0], m, cfg.bootstrap, cfg.seed) for m in models[1:]} or None
    return {
        "models": models, "benchmarks": labels, "scores": scores, "comparison": comparison,
        "errors": len(errors), "wall_seconds": round(seconds, 1),
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
    }  # fmt: skip


def _write_jsonl_by_benchmark(folder: Path, rows: list[dict[str, Any]], labels: list[str]) -> None:
    for label in labels:
        write_jsonl(folder / f"{label}.jsonl", [r for r in rows if r["benchmark"] == label])
