"""Phase 2 of Dual-Phase SFT, pure parts: sampling until the pass rate settles (a scripted fake policy) and the
allocation of kept samples over problems (hand-computed targets), never-solved problems listed apart."""

import asyncio

import pytest

from sphere_ray.dialogue.filters import FilterConfig, check
from sphere_ray.dialogue.rejection import AllocationParams, PassRateParams, allocate, sample_until_settled
from sphere_ray.dialogue.templates import load_templates
from sphere_ray.search.types import Problem


class FakeRoundPolicy:
    """Fake chat model: the k-th sample it draws for a problem is right iff ``pattern[k % len(pattern)]``."""

    def __init__(self, pattern: list[bool]) -> None:
        self.pattern, self.drawn, self.calls = pattern, 0, []

    async def render_chat(self, messages) -> str:
        return messages[-1]["content"]

    async def generate(self, request):
        from sphere_ray.serving.schema import GenerateResponse, Sample

        self.calls.append((request.n, request.seed))
        samples = []
        for _ in range(request.n):
            answer = "5" if self.pattern[self.drawn % len(self.pattern)] else "6"
            self.drawn += 1
            text = f"2 + 3: let me verify, 2 + 3 = 5 or 6. The answer is \\boxed{{{answer}}}."
            samples.append(Sample(text=text, num_tokens=20, finish_reason="stop"))
        return GenerateResponse(outputs=[samples], prompt_tokens=0, cached_prompt_tokens=0, model="fake")


def _run(pattern: list[bool], rate: PassRateParams, samples: int = 4):
    from sphere_ray.dialogue.dialogue import DialogueParams

    policy = FakeRoundPolicy(pattern)
    problem = Problem(id="p", problem="What is 2 + 3?", answer="5")
    out = asyncio.run(sample_until_settled(policy, problem, load_templates(), DialogueParams(samples=samples), rate))
    return out, policy


def test_sampling_stops_once_the_pass_rate_is_settled():
    # always right: after 4 the Wilson interval is [0.51, 1] (0.49 wide), after 8 [0.68, 1] (0.32), 12: 0.24
    out, policy = _run([True], PassRateParams(max_samples=32, min_samples=4, settle_width=0.3))
    assert len(out) == 12 and [n for n, _ in policy.calls] == [4, 4, 4]
    assert len({seed for _, seed in policy.calls}) == 3  # each round its own seed
    assert [d.sample for d in out] == list(range(12)) and all(d.correct == [True] for d in out)
    assert all(len(d.turns) == 1 for d in out)  # one turn: pi_sft verifies inside its answer


def test_sampling_stops_at_max_samples_when_the_rate_stays_uncertain():
    out, policy = _run([True, False], PassRateParams(max_samples=10, min_samples=2, settle_width=0.1))
    assert len(out) == 10 and [n for n, _ in policy.calls] == [4, 4, 2]  # the last round draws only what is left
    assert sum(d.correct[-1] for d in out) == 5


def test_sampling_stops_once_the_problem_token_budget_is_spent():
    # 20 tokens a sample: a budget of 100 is spent after 5 samples, reached by the end of round 2 (8 samples)
    rate = PassRateParams(max_samples=64, min_samples=64, settle_width=0.3, token_budget=100)
    out, policy = _run([True, False], rate)
    assert len(out) == 8 and [n for n, _ in policy.calls] == [4, 4] and sum(d.tokens for d in out) == 160
    out, _ = _run([True], PassRateParams(max_samples=64, min_samples=64, token_budget=80))
    assert len(out) == 4  # exactly spent after one round
    with pytest.raises(ValueError, match="problem_token_budget"):
        PassRateParams(token_budget=0)


def test_one_turn_samples_pass_the_behaviour_rule_only_with_required_behaviours_shown():
    out, _ = _run([True], PassRateParams(max_samples=1, min_samples=1, settle_width=1.0))
    assert check(out[0], FilterConfig(filters=["behaviours"])) == []
    assert check(out[0], FilterConfig(filters=["behaviours"], required_behaviours=["verification"])) == []
    assert check(out[0], FilterConfig(filters=["behaviours"], required_behaviours=["subgoal_setting"])) == [
        "behaviours: turn 1 shows no subgoal_setting (cues)"
    ]


def _problems() -> list[dict]:
    # pass rates: a 1/4, b 2/4, c 4/4, d 0/4 (never solved)
    return [{"problem_id": pid, "source": "t", "samples": 4, "final_correct": k} for pid, k in
            (("a", 1), ("b", 2), ("c", 4), ("d", 0))]  # fmt: skip


def _candidates() -> list[dict]:
    got = {"a": 1, "b": 2, "c": 4}
    return [{"problem_id": pid, "sample": s, "tokens": 10} for pid, n in got.items() for s in range(n)]


def _kept(selected: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in selected:
        out[c["problem_id"]] = out.get(c["problem_id"], 0) + 1
    return out


def test_prop2diff_keeps_more_of_the_harder_problems_and_lists_the_never_solved():
    selected, never, report = allocate(_problems(), _candidates(), AllocationParams("prop2diff", total_samples=6))
    # one each, 3 spare by fail rate 0.75 : 0.5 : 0 -> 1.8, 1.2, 0 -> floors 1, 1, remainder to a: a 3, b 2, c 1
    assert report["target_samples"] == 6 and _kept(selected) == {"a": 1, "b": 2, "c": 1}  # a has only one correct
    assert never == [{"problem_id": "d", "source": "t", "samples": 4}] and report["never_solved"] == 1
    assert report["pass_rate_histogram"]["before"] == [1, 0, 1, 0, 0, 1, 0, 0, 0, 1]
    assert report["pass_rate_histogram"]["after"] == [0, 0, 1, 0, 0, 2, 0, 0, 0, 1]


def test_uniform_band_and_token_budget():
    uniform, _, _ = allocate(_problems(), _candidates(), AllocationParams("uniform", per_problem=2))
    assert _kept(uniform) == {"a": 1, "b": 2, "c": 2}
    band, _, _ = allocate(_problems(), _candidates(), AllocationParams("band", per_problem=4, band=(0.2, 0.6)))
    assert _kept(band) == {"a": 1, "b": 2}  # c (1.0) is outside the band
    capped, _, report = allocate(_problems(), _candidates(), AllocationParams("uniform", per_problem=4,
                                                                             token_budget=35))  # fmt: skip
    # rounds, hardest first: a0, b0, c0, then b1 -> 40 > 35 stops: 3 samples, 30 tokens
    assert _kept(capped) == {"a": 1, "b": 1, "c": 1} and report["selected_tokens"] == 30


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"strategy": "hard"}, "strategy"), ({"band": (0.8, 0.2)}, "band"), ({"token_budget": 0}, "token_budget"),
     ({"per_problem": 0}, "per_problem"), ({"total_samples": 0}, "total_samples")],
)  # fmt: skip
def test_bad_allocation_values_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        AllocationParams(**kw)
    with pytest.raises(ValueError, match="settle_width"):
        PassRateParams(settle_width=0)
