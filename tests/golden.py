"""The stage-1 golden case, shared by the search's golden tests and the pair-schema tests.

A scripted FAKE policy and PRM (``fakes.py``) drive one SPHERE search whose tree is worked out by hand below.
"""

import asyncio
import json

from fakes import FakePolicy, FakePRM

from sphere_ray.search import Models, Problem, SearchParams, SphereParams, sphere_search

PROBLEM = Problem(id="p1", problem="How many clips?", answer="72")


def run(coro):
    return asyncio.run(coro)


# --- Stage 1: E=3, max_depth=3 -------------------------------------------------------------------
# root:  A1 p.9 (R .9)   B1 p.2 (R .2)   C1 p.5 (R .5)        -> max A1, min B1
# A1:    A2a p.6 (R .6-.3/.9=.2667)  A2b p.95 (R .95+.05/.9=1.0056)  A2c p.3 (R -.3667)  -> keep A2b
# B1:    B2a p.1 (R -.4)  B2b p.4 (R 1.4)  B2c p.1 (R -.4)    -> tie: min keeps the LAST, B2c
# A2b:   "\boxed{72}" p.9 (R .8474, right)  "The answer is 70" p.8 (R .6421)  "x" p.1 (R -.7947) -> keep box
# B2c:   "#### 5" p.3 (R 2.3)  "#### 6" p.2 (R 1.2)  "y" p.05 (R -.45)  -> keep "y" (depth 2 = last: unfinished)
STAGE1_SCRIPT = {
    ("solve", ()): ["A1", "B1", "C1"],
    ("solve", ("A1",)): ["A2a", "A2b", "A2c"],
    ("solve", ("B1",)): ["B2a", "B2b", "B2c"],
    ("solve", ("A1", "A2b")): ["\\boxed{72}", "The answer is 70", "x"],
    ("solve", ("B1", "B2c")): ["#### 5", "#### 6", "y"],
}
STAGE1_SCORES = {
    "A1": 0.9, "B1": 0.2, "C1": 0.5, "A2a": 0.6, "A2b": 0.95, "A2c": 0.3, "B2a": 0.1, "B2b": 0.4, "B2c": 0.1,
    "\\boxed{72}": 0.9, "The answer is 70": 0.8, "x": 0.1, "#### 5": 0.3, "#### 6": 0.2, "y": 0.05,
}  # fmt: skip


def stage1_result():
    policy, prm = FakePolicy(STAGE1_SCRIPT), FakePRM(STAGE1_SCORES)
    params = SphereParams(SearchParams(num_candidates=3, max_depth=3, temperature=0.8, max_step_tokens=64))
    return run(sphere_search(PROBLEM, Models(policy, prm), params)), policy, prm


def stage1_report_rows() -> tuple[list[dict], list[dict]]:
    """The stage-1 golden result as the generation job's ``trees`` and ``pairs`` rows (for the HTML report)."""
    from sphere_ray.pairs import pairs_to_table

    result, _, _ = stage1_result()
    tree = {"problem_id": result.problem.id, "stage": result.stage, "outcome": result.outcome,
            "num_pairs": len(result.pairs), "trees_json": json.dumps([t.to_dict() for t in result.trees])}  # fmt: skip
    return [tree], pairs_to_table(result.pairs, "golden").to_pylist()
