"""Golden tests of answer forcing (``SearchParams.answer_prefix``), driven by the scripted FAKE models.

Reward: R(s0) = p(s0); R(st) = p(st) + (p(st) - p(st-1)) / p(st-1).
"""

from fakes import FakePolicy, FakePRM
from golden import PROBLEM, STAGE1_SCORES, STAGE1_SCRIPT, run

from sphere_ray.generation.config import SearchOptions
from sphere_ray.search import Models, SearchParams, SphereParams, pruned_search, sphere_search

LEAD = "The final answer is \\boxed{"


def _stage1_forced():
    # The stage-1 golden tree, with forcing: Sol_max ends in "\boxed{72}" (an answer: not forced);
    # Sol_min is cut at depth 2 on "y" (p .05), so "y" gets one forced expansion:
    #   LEAD+"72}." p.6 (R .6+.55/.05=11.6)   LEAD+"70}." p.2 (R 3.2)   LEAD+"5}" p.1 (R 1.1) -> min keeps "5}"
    script = {**STAGE1_SCRIPT, ("solve", ("B1", "B2c", "y")): ["72}.", "70}.", "5}"]}
    scores = {**STAGE1_SCORES, LEAD + "72}.": 0.6, LEAD + "70}.": 0.2, LEAD + "5}": 0.1}
    policy, prm = FakePolicy(script), FakePRM(scores)
    search = SearchParams(num_candidates=3, max_depth=3, temperature=0.8, max_step_tokens=64, answer_prefix=LEAD)
    return run(sphere_search(PROBLEM, Models(policy, prm), SphereParams(search))), policy


def test_a_branch_cut_at_max_depth_gets_one_forced_answer_step():
    result, policy = _stage1_forced()
    tree = result.trees[0]
    hi, lo = tree.solution("max"), tree.solution("min")
    assert hi.steps == ("A1", "A2b", "\\boxed{72}") and hi.correct  # had an answer: not forced
    assert lo.steps == ("B1", "B2c", "y", LEAD + "5}") and lo.finished and lo.answer == "5" and not lo.correct
    forced = [n for n in tree.nodes if n.text.startswith(LEAD)]
    assert len(forced) == 3 and all(n.terminal and n.depth == 3 for n in forced)
    assert {n.text: n.correct for n in forced} == {LEAD + "72}.": True, LEAD + "70}.": False, LEAD + "5}": False}
    assert len(policy.requests) == 6 and policy.requests[-1].prompt.endswith("y\n\n" + LEAD)
    assert policy.requests[-1].stop == ("\n\n", "\n") and policy.requests[0].stop == ("\n\n",)
    assert len({r.seed for r in policy.requests}) == 6


def test_forced_steps_make_step_pairs_under_the_unforced_prefix():
    result, _ = _stage1_forced()
    root = result.trees[0].prompt
    forced_pair = {(p.prompt, p.chosen, p.rejected) for p in result.pairs if p.level == "step" and p.depth == 3}
    assert forced_pair == {(root + "B1\n\nB2c\n\ny\n\n", LEAD + "72}.", LEAD + "5}")}
    traj = next(p for p in result.pairs if p.level == "trajectory")
    assert traj.rejected.endswith("y\n\n" + LEAD + "5}") and result.outcome == "stage1"


def test_forcing_lets_two_right_answers_route_to_stage_3():
    # E=2, max_depth=1: neither root step states an answer, so both branches are forced.
    script = {
        ("solve", ()): ["A", "B"],
        ("solve", ("A",)): ["72}.", "9}."],
        ("solve", ("B",)): ["72} clips.", "72}"],
    }
    scores = {"A": 0.8, "B": 0.4, LEAD + "72}.": 0.9, LEAD + "9}.": 0.1, LEAD + "72} clips.": 0.5, LEAD + "72}": 0.3}
    params = SphereParams(SearchParams(2, max_depth=1, answer_prefix=LEAD))
    result = run(sphere_search(PROBLEM, Models(FakePolicy(script), FakePRM(scores)), params))
    hi, lo = (result.trees[0].solution(b) for b in ("max", "min"))
    assert (hi.answer, lo.answer) == ("72", "72") and hi.correct and lo.correct
    assert result.stage == 3 and result.outcome == "stage3_skipped"  # no small policy given


def test_end_of_sequence_without_an_answer_is_forced_once():
    script = {("solve", ()): [("I am done", True), ("#### 72", True)], ("solve", ("I am done",)): ["72", "x"]}
    scores = {"I am done": 0.1, "#### 72": 0.9, LEAD + "72": 0.5, LEAD + "x": 0.4}
    policy = FakePolicy(script)
    tree = run(pruned_search(policy, FakePRM(scores), PROBLEM, "q", SearchParams(2, max_depth=4, answer_prefix=LEAD)))
    lo = tree.solution("min")
    assert lo.steps == ("I am done", LEAD + "x") and lo.finished and not lo.correct
    assert tree.solution("max").steps == ("#### 72",) and len(policy.requests) == 2  # the root, then one forcing


def test_forcing_is_off_by_default_and_recipe_fields_reach_the_search():
    assert SearchParams().answer_prefix == ""
    params = SearchOptions(answer_prefix=LEAD, small_temperature=0.8, temperature=0.3).sphere_params()
    assert params.search.answer_prefix == LEAD and params.small_search.temperature == 0.8


def test_a_forced_answer_that_restates_the_question_is_graded_wrong():
    from sphere_ray.search import Problem

    sums = Problem(id="s1", problem="What is 1 + 1?", answer="2")
    script = {("solve", ()): ["A", "B"], ("solve", ("A",)): ["2}", "9}"], ("solve", ("B",)): ["1 + 1}", "7}"]}
    scores = {"A": 0.8, "B": 0.4, LEAD + "2}": 0.9, LEAD + "9}": 0.1, LEAD + "1 + 1}": 0.5, LEAD + "7}": 0.6}
    params = SphereParams(SearchParams(2, max_depth=1, answer_prefix=LEAD))
    result = run(sphere_search(sums, Models(FakePolicy(script), FakePRM(scores)), params))
    hi, lo = (result.trees[0].solution(b) for b in ("max", "min"))
    assert hi.correct and lo.answer == "1 + 1" and not lo.correct  # math-verify alone would call "1 + 1" right
    assert result.stage == 1 and not any(p.chosen.endswith("1 + 1}") for p in result.pairs)
