"""The HTML report's page: self-contained, every step and pair embedded, model text kept out of the markup."""

import json
import re

from golden import stage1_report_rows

from sphere_ray.pipeline.html_report import MAX_PROBLEMS, build_html, round_data


def embedded(html: str) -> dict:
    body = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    return json.loads(body)


def test_the_page_embeds_every_tree_node_and_pair_and_needs_no_network(tmp_path):
    trees, pairs = stage1_report_rows()
    png = tmp_path / "pairs.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 16)
    html = build_html("run", [round_data(1, "tiny", trees, pairs)], [png])
    data = embedded(html)
    (problem,) = data["rounds"][0]["problems"]
    assert problem["id"] == "p1" and problem["stage"] == 1 and len(problem["trees"][0]["nodes"]) == 15
    assert {p["pair_id"] for p in data["rounds"][0]["pairs"]} == {p["pair_id"] for p in pairs}
    assert data["figures"][0]["src"].startswith("data:image/png;base64,")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no fetch from anywhere


def test_model_text_cannot_end_the_data_script():
    trees, pairs = stage1_report_rows()
    pairs[0]["chosen"] = "</script><script>alert(1)</script> \u2028"
    html = build_html("<b>t</b>", [round_data(1, "tiny", trees, pairs)])
    assert html.count("</script>") == 2 and "<b>t</b>" not in html
    assert embedded(html)["rounds"][0]["pairs"][0]["chosen"].startswith("</script>")


def test_a_large_round_embeds_the_first_problems_and_says_how_many_are_left_out():
    trees, pairs = stage1_report_rows()
    many = [{**trees[0], "problem_id": f"p{i:04d}"} for i in range(MAX_PROBLEMS + 5)]
    data = round_data(1, "tiny", many, pairs)
    assert len(data["problems"]) == MAX_PROBLEMS and data["left_out"] == 5 and data["pairs"] == []


def test_the_run_report_writes_the_html_beside_the_markdown_from_the_generation_folder(tmp_path):
    from types import SimpleNamespace

    from sphere_ray.generation.store import Batch, OutputStore
    from sphere_ray.pipeline.report import write_report

    trees, pairs = stage1_report_rows()
    counters = {"generated_tokens": 40, "step_generations": 15, "prm_calls": 15, "seconds": 1.0,
                "policy_seconds": 0.5, "prm_seconds": 0.5, "attempts": 1}  # fmt: skip
    batch = Batch()
    batch["trees"].extend({**row, **counters} for row in trees)
    batch["pairs"].extend(pairs)
    generate = tmp_path / "run" / "round-1" / "generate"
    OutputStore(str(generate)).commit(batch)
    (generate / "summary.json").write_text(json.dumps({"problems_done": 1, "outcomes": {"stage1": 1}, "rejects": 0,
                                                       "generated_tokens": 40, "prm_calls": 15}))  # fmt: skip
    cfg = SimpleNamespace(output_dir=str(tmp_path / "run"), base_model="tiny")
    run = {"rounds": [{"round": 1, "policy": "tiny", "generate": str(generate)}], "wall_seconds": 60.0,
           "eval": str(tmp_path / "eval")}  # fmt: skip
    evaluation = {"models": ["base"], "benchmarks": [], "scores": {"base": {}}}
    md = write_report(cfg, run, evaluation).read_text()
    assert "[report.html](report.html)" in md and "| 1 | step | 3 |" in md
    data = embedded((tmp_path / "run" / "report" / "report.html").read_text())
    (problem,) = data["rounds"][0]["problems"]
    assert problem["id"] == "p1" and len(data["rounds"][0]["pairs"]) == len(pairs)
    assert {f["name"] for f in data["figures"]} == {"round1_pairs", "round1_rewards", "round1_trees"}
