"""Invariants of the search over many random FAKE models (random steps, answers and PRM scores)."""

import asyncio
import random

import pytest

from sphere_ray.search import Models, Problem, SearchParams, SphereParams, StepSample, sphere_search

PROBLEM = Problem(id="r", problem="q?", answer="7")


class RandomPolicy:
    """FAKE policy: random steps; some state a random final answer, some end with EOS."""

    def __init__(self, rng: random.Random, name: str) -> None:
        self.rng, self.name = rng, name

    async def render_prompt(self, user_message):
        return f"<{self.name}>{user_message}</>"

    async def sample_steps(self, requests):
        return [[self._one() for _ in range(r.n)] for r in requests]

    def _one(self):
        roll = self.rng.random()
        if roll < 0.3:
            return StepSample(f"so #### {self.rng.choice([6, 7, 8])}", 5)
        if roll < 0.35:
            return StepSample("done", 3, finished=True)
        return StepSample(f"step {self.rng.randrange(4)}", 4)  # repeats on purpose: equal texts happen


class RandomPRM:
    name = "random-prm"

    def __init__(self, rng):
        self.rng = rng

    async def score_steps(self, requests):
        return [[self.rng.choice([0.0, 0.1, 0.5, 0.5, 0.9, 1.0])] for _ in requests]


@pytest.mark.parametrize("seed", range(60))
def test_pair_invariants(seed):
    rng = random.Random(seed)
    models = Models(RandomPolicy(rng, "big"), RandomPRM(rng), small_policy=RandomPolicy(rng, "small"))
    params = SphereParams(SearchParams(num_candidates=rng.choice([2, 3, 5]), max_depth=rng.choice([1, 2, 4])))
    result = asyncio.run(sphere_search(PROBLEM, models, params))
    t1 = result.trees[0]
    hi, lo = t1.solution("max"), t1.solution("min")
    expected_stage = 1 if hi.correct != lo.correct else (2 if not hi.correct else 3)
    assert result.stage == expected_stage
    for p in result.pairs:
        assert p.chosen_correct is True, "a chosen side must never be wrong"
        assert p.chosen != p.rejected
        assert p.rejected_correct is not True
        assert p.problem_id == "r" and p.prompt
    for tree in result.trees:
        for n in tree.nodes:
            assert 0.0 <= n.prm <= 1.0
            assert n.depth < params.search.max_depth
            assert (n.answer is not None) <= n.terminal
        kept = [n for n in tree.nodes if n.kept != "pruned"]
        # each branch keeps exactly one node per depth it reached
        for branch in ("max", "min"):
            depths = [n.depth for n in kept if n.kept == branch]
            assert depths == list(range(len(depths)))
    assert result.counters.prm_calls == result.counters.step_generations == sum(len(t.nodes) for t in result.trees)
    assert len({p.pair_id for p in result.pairs}) == len(result.pairs)
