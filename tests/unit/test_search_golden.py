"""Golden tests: scripted fake models drive the SPHERE search; expectations are worked out by hand.

Reward: R(s0) = p(s0); R(st) = p(st) + (p(st) - p(st-1)) / p(st-1).
"""

import asyncio

import pytest
from fakes import FakePolicy, FakePRM
from golden import PROBLEM, STAGE1_SCORES, STAGE1_SCRIPT, run, stage1_result

from sphere_ray.search import Models, Problem, SearchParams, SphereParams, pruned_search, sphere_search, step_reward


def test_reward_formula_by_hand():
    assert step_reward(0.9, None) == 0.9
    assert step_reward(0.95, 0.9) == pytest.approx(0.95 + 0.05 / 0.9)
    assert step_reward(0.1, 0.2) == pytest.approx(-0.4)
    assert step_reward(0.5, 0.0, eps=1e-3) == pytest.approx(0.5 + 0.5 / 1e-3)  # p≈0 guarded


def test_stage1_tree_kept_and_pruned():
    result, _, _ = stage1_result()
    (tree,) = result.trees
    by_text = {n.text: n for n in tree.nodes}
    assert len(tree.nodes) == 15
    assert {t for t, n in by_text.items() if n.kept == "max"} == {"A1", "A2b", "\\boxed{72}"}
    assert {t for t, n in by_text.items() if n.kept == "min"} == {"B1", "B2c", "y"}
    assert by_text["A2b"].reward == pytest.approx(0.95 + 0.05 / 0.9)
    assert by_text["B2c"].reward == pytest.approx(-0.4) and by_text["B2a"].kept == "pruned"
    assert by_text["\\boxed{72}"].terminal and by_text["\\boxed{72}"].correct is True
    assert by_text["The answer is 70"].answer == "70" and by_text["The answer is 70"].correct is False
    assert not by_text["y"].terminal and by_text["y"].depth == 2
    # pruned nodes are never expanded
    assert not tree.children(by_text["C1"].id) and not tree.children(by_text["A2a"].id)


def test_stage1_routing_solutions_and_pairs():
    result, _, _ = stage1_result()
    tree = result.trees[0]
    hi, lo = tree.solution("max"), tree.solution("min")
    assert hi.steps == ("A1", "A2b", "\\boxed{72}") and hi.correct and hi.finished
    assert lo.steps == ("B1", "B2c", "y") and not lo.correct and not lo.finished
    assert result.stage == 1 and result.outcome == "stage1"
    root = tree.prompt
    expected = {
        ("trajectory", root, "A1\n\nA2b\n\n\\boxed{72}", "B1\n\nB2c\n\ny"),
        ("step", root, "A1", "B1"),  # root: max vs min child
        ("step", root + "A1\n\n", "A2b", "A2c"),  # on Sol_max's path, rejected = the pruned min sibling
        ("step", root + "A1\n\nA2b\n\n", "\\boxed{72}", "x"),
        # B1's max child B2b is pruned with unknown correctness: no pair; B2c's best child "#### 5" is wrong: no pair
    }
    assert {(p.level, p.prompt, p.chosen, p.rejected) for p in result.pairs} == expected
    traj = next(p for p in result.pairs if p.level == "trajectory")
    assert traj.chosen_score == pytest.approx((0.9 + (0.95 + 0.05 / 0.9) + (0.9 - 0.05 / 0.95)) / 3)
    assert (traj.chosen_correct, traj.rejected_correct, traj.stage) == (True, False, 1)
    root_pair = next(p for p in result.pairs if p.level == "step" and p.depth == 0)
    assert root_pair.rejected_correct is False and root_pair.chosen_score == pytest.approx(0.9)


def test_stage1_counters_and_requests():
    result, policy, prm = stage1_result()
    c = result.counters
    assert (c.policy_calls, c.step_generations, c.prm_calls, c.prm_batches) == (5, 15, 15, 5)
    assert c.generated_tokens == 150
    assert [len(policy.requests)] == [5]  # root, then each branch on its own at depths 1 and 2
    assert all(r.n == 3 and r.temperature == 0.8 and r.stop == ("\n\n",) for r in policy.requests)
    assert len({r.seed for r in policy.requests}) == 5  # one seed per expanded node
    assert all(r.question == "How many clips?" and r.only_last for r in prm.requests)
    assert ("A1", "A2b", "\\boxed{72}") in {r.steps for r in prm.requests}


def test_seeds_are_reproducible():
    a, pa, _ = stage1_result()
    b, pb, _ = stage1_result()
    assert [r.seed for r in pa.requests] == [r.seed for r in pb.requests]
    assert [p.pair_id for p in a.pairs] == [p.pair_id for p in b.pairs]


class _SlowMaxPolicy(FakePolicy):
    """FAKE policy whose answers on the max branch (under A1) come late, so the min branch runs ahead."""

    async def sample_steps(self, requests):
        if any("A1" in r.prompt for r in requests):
            await asyncio.sleep(0.05)
        return await super().sample_steps(requests)


def test_tree_ids_and_seeds_do_not_depend_on_which_branch_runs_ahead():
    params = SphereParams(SearchParams(num_candidates=3, max_depth=3, temperature=0.8, max_step_tokens=64))
    slow, fast = _SlowMaxPolicy(STAGE1_SCRIPT), FakePolicy(STAGE1_SCRIPT)
    a = run(sphere_search(PROBLEM, Models(slow, FakePRM(STAGE1_SCORES)), params))
    b = run(sphere_search(PROBLEM, Models(fast, FakePRM(STAGE1_SCORES)), params))
    assert ["A1" in r.prompt for r in slow.requests] == [False, False, False, True, True]  # min ran to its end first
    untimed = [{k: v for k, v in r.trees[0].to_dict().items() if k != "counters"} for r in (a, b)]
    assert untimed[0] == untimed[1]  # same nodes, ids, links and leaves
    assert sorted(r.seed for r in slow.requests) == sorted(r.seed for r in fast.requests)
    assert [n.id for n in a.trees[0].nodes] == list(range(15)) and a.trees[0].nodes[3].text == "A2a"
    with pytest.raises(ValueError, match="permutation"):
        a.trees[0].renumber([0] * 15)


# --- Stage 2: both wrong -> self-correction with ORM -------------------------------------------------
# stage 1 (E=2, depth 1): "#### 5" p.7, "#### 6" p.4 (answer 7: both wrong)
# stage 2: "#### 8" p.9 (R .9, wrong), "#### 7" p.3 (R .3 + ORM 1 = 1.3, right) -> max "#### 7", min "#### 8"
STAGE2_SCRIPT = {
    ("solve", ()): ["#### 5", "#### 6"],
    ("correct", ()): ["#### 8", "#### 7"],
}
STAGE2_SCORES = {"#### 5": 0.7, "#### 6": 0.4, "#### 8": 0.9, "#### 7": 0.3}
P7 = Problem(id="p7", problem="What is 3+4?", answer="7")


def test_stage2_self_correction_with_orm():
    policy, prm = FakePolicy(STAGE2_SCRIPT), FakePRM(STAGE2_SCORES)
    params = SphereParams(SearchParams(num_candidates=2, max_depth=1))
    result = run(sphere_search(P7, Models(policy, prm), params))
    assert result.stage == 2 and result.outcome == "stage2_solved"
    t1, t2 = result.trees
    assert t2.kind == "correct" and "#### 5" in t2.prompt and "contains an error" in t2.prompt  # shown Sol_max
    by_text = {n.text: n for n in t2.nodes}
    assert by_text["#### 7"].reward == pytest.approx(1.3) and by_text["#### 7"].kept == "max"
    assert by_text["#### 8"].reward == pytest.approx(0.9) and by_text["#### 8"].kept == "min"
    assert all(r.question == "What is 3+4?" for r in prm.requests)  # PRM judges the original problem
    got = {(p.level, p.prompt_kind, p.prompt, p.chosen, p.rejected) for p in result.pairs}
    assert got == {
        ("trajectory", "solve", t1.prompt, "#### 7", "#### 5"),  # corrected vs the wrong Sol_max
        ("trajectory", "correct", t2.prompt, "#### 7", "#### 8"),
        ("step", "correct", t2.prompt, "#### 7", "#### 8"),
    }
    assert all(p.stage == 2 and p.chosen_correct for p in result.pairs)


def test_stage2_without_orm_would_keep_the_wrong_one():
    """The ORM changes the decision: a constant-zero ORM leaves "#### 8" as the max child."""
    policy, prm = FakePolicy(STAGE2_SCRIPT), FakePRM(STAGE2_SCORES)
    params = SphereParams(SearchParams(num_candidates=2, max_depth=1))
    result = run(sphere_search(P7, Models(policy, prm, orm=lambda problem, sol: 0.0), params))
    assert result.outcome == "stage2_solved"  # "#### 7" is still found, as the min branch
    t2 = result.trees[1]
    assert t2.solution("max").steps == ("#### 8",) and t2.solution("min").steps == ("#### 7",)


def test_stage2_unsolved_gives_no_pairs():
    script = {("solve", ()): ["#### 5", "#### 6"], ("correct", ()): ["#### 1", "#### 2"]}
    scores = {"#### 5": 0.7, "#### 6": 0.4, "#### 1": 0.5, "#### 2": 0.6}
    result = run(
        sphere_search(P7, Models(FakePolicy(script), FakePRM(scores)), SphereParams(SearchParams(2, max_depth=1)))
    )
    assert result.outcome == "stage2_unsolved" and result.pairs == []


def test_stage2_reference_fallback_pairs_the_reference_solution():
    """Off by default; on, a failed self-correction pairs the reference solution (chosen) vs Sol_max."""
    script = {("solve", ()): ["#### 5", "#### 6"], ("correct", ()): ["#### 1", "#### 2"]}
    scores = {"#### 5": 0.7, "#### 6": 0.4, "#### 1": 0.5, "#### 2": 0.6}
    problem = Problem(id="p7", problem="What is 3+4?", answer="7", solution="3 + 4 = 7.\nSo 7.")
    params = SphereParams(SearchParams(2, max_depth=1), reference_fallback=True)
    result = run(sphere_search(problem, Models(FakePolicy(script), FakePRM(scores)), params))
    assert result.outcome == "stage2_reference"
    (pair,) = result.pairs
    assert pair.chosen == "3 + 4 = 7.\n\nSo 7.\n\nThe answer is \\boxed{7}." and pair.rejected == "#### 5"
    assert pair.chosen_model == "reference" and pair.chosen_correct and pair.rejected_correct is False
    assert pair.stage == 2 and pair.level == "trajectory" and pair.prompt == result.trees[0].prompt
    no_solution = run(sphere_search(P7, Models(FakePolicy(script), FakePRM(scores)), params))
    assert no_solution.outcome == "stage2_unsolved" and no_solution.pairs == []  # nothing to fall back on
    boxed = Problem(id="p8", problem="What is 3+4?", answer="7", solution="3 + 4 = 7.\nThe answer is $\\boxed{7}$.")
    (pair,) = run(sphere_search(boxed, Models(FakePolicy(script), FakePRM(scores)), params)).pairs
    assert pair.chosen == "3 + 4 = 7.\n\nThe answer is $\\boxed{7}$."  # an answer already boxed is not boxed twice


# --- Stage 3: both right -> the small policy with 2E candidates --------------------------------------
STAGE3_SCRIPT = {("solve", ()): ["#### 7", "\\boxed{7}"]}
SMALL_SCRIPT = {("solve", ()): ["#### 9", "The answer is 7", "#### 1", "#### 2"]}
STAGE3_SCORES = {"#### 7": 0.9, "\\boxed{7}": 0.5, "#### 9": 0.8, "The answer is 7": 0.6, "#### 1": 0.1, "#### 2": 0.5}


def test_stage3_small_policy_wrong_solutions_become_rejected():
    policy, small, prm = FakePolicy(STAGE3_SCRIPT), FakePolicy(SMALL_SCRIPT, name="fake-small"), FakePRM(STAGE3_SCORES)
    params = SphereParams(SearchParams(num_candidates=2, max_depth=1))
    result = run(sphere_search(P7, Models(policy, prm, small_policy=small), params))
    assert result.stage == 3 and result.outcome == "stage3"
    assert [r.n for r in small.requests] == [4]  # 2E
    got = {(p.chosen, p.rejected, p.rejected_model) for p in result.pairs}
    # small max "#### 9" and small min "#### 1" are wrong; root step pair of stage 1 is skipped (both sides right)
    assert got == {("#### 7", "#### 9", "fake-small"), ("#### 7", "#### 1", "fake-small")}
    assert all(p.level == "trajectory" and p.stage == 3 and p.chosen_model == "fake-policy" for p in result.pairs)


def test_stage3_samples_at_small_temperature_when_set():
    policy, small, prm = FakePolicy(STAGE3_SCRIPT), FakePolicy(SMALL_SCRIPT, name="fake-small"), FakePRM(STAGE3_SCORES)
    params = SphereParams(SearchParams(num_candidates=2, max_depth=1, temperature=0.3), small_temperature=0.8)
    run(sphere_search(P7, Models(policy, prm, small_policy=small), params))
    assert [r.temperature for r in policy.requests] == [0.3] and [r.temperature for r in small.requests] == [0.8]
    assert SphereParams(SearchParams(temperature=0.3)).small_search.temperature == 0.3  # None: the search's
    with pytest.raises(ValueError, match="small_temperature"):
        SphereParams(small_temperature=-1.0)


def test_stage3_skipped_without_small_policy():
    result = run(
        sphere_search(
            P7, Models(FakePolicy(STAGE3_SCRIPT), FakePRM(STAGE3_SCORES)), SphereParams(SearchParams(2, max_depth=1))
        )
    )
    assert result.outcome == "stage3_skipped" and result.pairs == []


# --- Edge cases ----------------------------------------------------------------------------------
def test_ties_pick_first_max_and_last_min():
    script = {("solve", ()): [("a", True), ("b", True), ("c", True)]}
    tree = run(
        pruned_search(
            FakePolicy(script), FakePRM({"a": 0.5, "b": 0.5, "c": 0.5}), PROBLEM, "q", SearchParams(3, max_depth=2)
        )
    )
    assert tree.leaves == {"max": 0, "min": 2}
    assert all(n.terminal and n.answer is None and n.correct is False for n in tree.nodes)  # EOS without an answer


def test_empty_step_ends_the_path_and_is_left_out_of_the_text():
    script = {("solve", ()): ["A1", "B1"], ("solve", ("A1",)): ["#### 72", "#### 1"], ("solve", ("B1",)): ["", "z"]}
    scores = {"A1": 0.9, "B1": 0.1, "#### 72": 0.9, "#### 1": 0.1, "": 0.0, "z": 0.5}
    tree = run(pruned_search(FakePolicy(script), FakePRM(scores), PROBLEM, "q", SearchParams(2, max_depth=4)))
    lo = tree.solution("min")
    assert lo.steps == ("B1",) and lo.finished and not lo.correct


class _BrokenPolicy(FakePolicy):
    async def sample_steps(self, requests):
        return []


def test_policy_returning_too_few_lists_is_an_error():
    with pytest.raises(RuntimeError, match="policy returned 0 sample lists"):
        run(pruned_search(_BrokenPolicy({}), FakePRM({}), PROBLEM, "q", SearchParams(2)))


def test_prm_scores_are_clamped_and_nan_is_zero():
    script = {("solve", ()): [("#### 72", True), ("#### 3", True)]}
    tree = run(
        pruned_search(
            FakePolicy(script), FakePRM({"#### 72": 1.7, "#### 3": float("nan")}), PROBLEM, "q", SearchParams(2)
        )
    )
    assert [n.prm for n in tree.nodes] == [1.0, 0.0]


@pytest.mark.parametrize(
    "kwargs, field",
    [({"num_candidates": 1}, "num_candidates"), ({"max_depth": 0}, "max_depth"), ({"temperature": -1.0}, "temperature"),
     ({"max_step_tokens": 0}, "max_step_tokens"), ({"eps": 0.0}, "eps")],
)  # fmt: skip
def test_search_params_reject_bad_values(kwargs, field):
    with pytest.raises(ValueError, match=field):
        SearchParams(**kwargs)


def test_sphere_params_reject_bad_templates():
    with pytest.raises(ValueError, match="correction_template"):
        SphereParams(correction_template="fix {oops}")
    with pytest.raises(ValueError, match="small_num_candidates"):
        SphereParams(small_num_candidates=1)
