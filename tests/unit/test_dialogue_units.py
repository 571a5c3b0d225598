"""Pure logic of Dual-Phase SFT: templates, the behaviour detectors, each rule filter, Phase 2's allocation."""

import asyncio

import pytest

from sphere_ray.dialogue.allocation import Candidate, histogram, select, settled, targets, wilson
from sphere_ray.dialogue.behaviours import behaviour_counts, behaviours_present, judge_messages, parse_judgement
from sphere_ray.dialogue.filters import FILTER_NAMES, FilterConfig, acceptance, check
from sphere_ray.dialogue.sample import Dialogue, Turn, conversation, merged_completion
from sphere_ray.dialogue.templates import BEHAVIOURS, load_templates

T1 = "We need to find 3 * 4. First, we multiply: 3 * 4 = 12. So the answer is \\boxed{12}."
T2 = "Let me verify: 12 / 4 = 3, which matches. The answer checks out: \\boxed{12}."


def _dialogue(*texts, reference="12", finish=None, behaviour="verification", tokens=40):
    turns = [Turn(prompt="What is 3 * 4?", text=texts[0], tokens=tokens, finish_reason=(finish or ["stop"] * 9)[0])]
    for i, text in enumerate(texts[1:], start=1):
        turns.append(Turn(prompt="Verify.", text=text, tokens=tokens, finish_reason=(finish or ["stop"] * 9)[i],
                          template_id=f"tpl-{i}", behaviour=behaviour))  # fmt: skip
    return Dialogue("p1", "What is 3 * 4?", reference, 0, turns)


# --- templates -------------------------------------------------------------------------------------------


def test_bundled_pool_covers_every_behaviour_with_several_templates():
    pool = load_templates()
    for b in BEHAVIOURS:
        assert sum(t.behaviour == b for t in pool.templates) >= 2, b
    text = pool.by_id["verify-substitute"].render("12", "What is 3 * 4?")
    assert "12" in text and "\\boxed{}" in text and "{" not in text.replace("\\boxed{}", "")


def test_choice_is_deterministic_and_rotates_behaviours():
    pool = load_templates()
    first = pool.choose("p1", 0, 2)
    assert pool.choose("p1", 0, 2) == first
    second = pool.choose("p1", 0, 3, exclude=[first.id])
    assert second.id != first.id and second.behaviour != first.behaviour
    assert len({pool.choose(f"p{i}", 0, 2).id for i in range(200)}) == len(pool.templates)  # all get used
    only = load_templates(behaviours=["backtracking"])
    assert {t.behaviour for t in only.templates} == {"backtracking"}


@pytest.mark.parametrize(
    "body, message",
    [
        ("templates: []", "non-empty list"),
        ("templates: [{id: a, behaviour: guessing, text: hi}]", "behaviour 'guessing'"),
        ("templates: [{id: a, behaviour: verification, text: 'use {x}'}]", "unknown placeholder"),
        ("templates: [{id: a, behaviour: verification}]", "exactly the keys"),
        ("templates: [{id: a, behaviour: verification, text: x}, {id: a, behaviour: backtracking, text: y}]",
         "repeated id"),
    ],
)  # fmt: skip
def test_bad_template_files_name_the_problem(tmp_path, body, message):
    path = tmp_path / "t.yaml"
    path.write_text(body)
    with pytest.raises(ValueError, match=message):
        load_templates(path)


def test_user_pool_and_bad_behaviour_filter(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("templates:\n  - {id: mine, behaviour: backward_chaining, text: 'From {answer}, work backward.'}\n")
    assert load_templates(path).choose("x", 1, 2).render(None, "q") == "From no final answer, work backward."
    with pytest.raises(ValueError, match="behaviours"):
        load_templates(path, behaviours=["verify"])


# --- behaviours ------------------------------------------------------------------------------------------


def test_detector_counts_cues_per_behaviour():
    text = ("First, we find x. Wait, that was wrong; let me reconsider. Let me double-check by substituting "
            "x back into the equation. Working backward from the goal, we would need y = 2.")  # fmt: skip
    counts = behaviour_counts(text)
    assert set(counts) == set(BEHAVIOURS)
    assert counts["verification"] >= 1 and counts["backtracking"] >= 2
    assert counts["subgoal_setting"] >= 1 and counts["backward_chaining"] >= 2
    assert behaviours_present("So 2 + 2 = 4. \\boxed{4}") == set()


def test_judge_prompt_and_verdict_parsing():
    (msg,) = judge_messages("x" * 10_000 + "Let me check: 3 * 4 = 12.", max_chars=100)
    assert msg["role"] == "user" and all(b in msg["content"] for b in BEHAVIOURS)
    assert "Let me check" in msg["content"] and "x" * 101 not in msg["content"]  # only the text's tail
    answer = "verification: yes\nBacktracking: No\n- **Subgoal setting**: yes\nbackward-chaining = no"
    assert parse_judgement(answer) == {"verification", "subgoal_setting"}
    assert parse_judgement("verification: yes\nbacktracking: no") is None  # not all four: no verdict
    assert parse_judgement("I think it verifies.") is None


def test_judge_verdict_overrides_the_cues_in_the_behaviour_rule():
    from sphere_ray.dialogue.dialogue import judge_turns

    class FakeJudge:
        """Fake judge model: says yes to verification only when the solution mentions 'divide'."""

        def __init__(self):
            self.requests = []

        async def render_chat(self, messages):
            return messages[-1]["content"]

        async def generate(self, request):
            from sphere_ray.serving.schema import GenerateResponse, Sample

            self.requests.append(request)
            verdict = lambda p: "verification: " + ("yes" if "divide" in p else "no")  # noqa: E731
            tail = "\nbacktracking: no\nsubgoal_setting: no\nbackward_chaining: no"
            outs = [[Sample(text=verdict(p) + tail if "12 / 4" not in p else "no idea", num_tokens=9,
                            finish_reason="stop")] for p in request.prompts]  # fmt: skip
            return GenerateResponse(outputs=outs, prompt_tokens=0, cached_prompt_tokens=0, model="judge")

    cues_only = _dialogue(T1, "Let me verify: 3 * 4 = 12. \\boxed{12}")  # cue yes, judge no
    judged_yes = _dialogue(T1, "I divide 12 by 4 and get 3 again. \\boxed{12}")  # cue no, judge yes
    unparsed = _dialogue(T1, T2)  # the judge's answer does not parse: cues decide (yes)
    judge = FakeJudge()
    out = asyncio.run(judge_turns(judge, [cues_only, judged_yes, unparsed]))
    assert len(judge.requests) == 1 and len(judge.requests[0].prompts) == 3  # one batched call, turn 2 of each
    assert judge.requests[0].temperature == 0.0
    assert [d.turns[1].judged for d in out] == [frozenset(), frozenset({"verification"}), None]
    assert cues_only.turns[1].judged is None  # the inputs are not changed
    cfg = FilterConfig(filters=["behaviours"])
    assert check(out[0], cfg) == ["behaviours: turn 2 shows no verification (judge)"]
    assert check(out[1], cfg) == [] and check(out[2], cfg) == []
    assert check(judged_yes, cfg) == ["behaviours: turn 2 shows no verification (cues)"]
    one_turn = asyncio.run(judge_turns(judge, [_dialogue("I divide: 12 / 3 = 4 \\boxed{12}")]))
    assert one_turn[0].turns[0].judged == frozenset({"verification"})  # a Phase-2 answer: its only turn


# --- sample formats --------------------------------------------------------------------------------------


def test_dialogue_grades_every_turn_and_merges_with_one_final_box():
    d = _dialogue("So the answer is \\boxed{13}.", "Wait, 3 * 4 = 12, I made a mistake. \\boxed{12}")
    assert d.answers == ["13", "12"] and d.correct == [False, True] and d.corrected
    merged = merged_completion(d)
    assert merged.count("\\boxed") == 1 and merged.endswith("\\boxed{12}") and "is 13." in merged
    msgs = conversation(d, system="Be careful.")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"]
    assert msgs[-1]["content"].endswith("\\boxed{12}")


# --- filters: every rule gives a named rejection --------------------------------------------------------

REJECTS = {
    "final_correct": lambda: _dialogue(T1, "Let me verify again: 3 * 4 = 13. \\boxed{13}"),
    "one_final_answer": lambda: _dialogue(T1, "Let me verify: it is \\boxed{12} or maybe \\boxed{13}."),
    "not_truncated": lambda: _dialogue(T1, T2, finish=["stop", "length"]),
    "behaviours": lambda: _dialogue(T1, "I am sure. The answer is \\boxed{12}."),
    "no_repetition": lambda: _dialogue(T1, "Let me verify. " + "we add the numbers and get the same result again " * 6
                                       + "\\boxed{12}"),
    "length": lambda: _dialogue(T1, T2, tokens=5000),
    "not_restatement": lambda: _dialogue(T1, "Let me verify. " + T1),
    "no_flip": lambda: _dialogue(T1, "Let me verify: no, it is \\boxed{13}.", "Let me check again: \\boxed{12}."),
}  # fmt: skip


def test_a_good_correction_chain_passes_every_rule():
    assert check(_dialogue(T1, T2), FilterConfig()) == []


@pytest.mark.parametrize("name", FILTER_NAMES)
def test_each_rule_rejects_with_its_name(name):
    reasons = check(REJECTS[name](), FilterConfig())
    assert any(r.startswith(f"{name}: ") for r in reasons), reasons
    only = check(REJECTS[name](), FilterConfig(filters=[n for n in FILTER_NAMES if n != name]))
    assert not any(r.startswith(f"{name}: ") for r in only)  # a switched-off rule drops nothing


def test_required_behaviours_override_the_template_behaviour():
    d = _dialogue(T1, T2)
    assert check(d, FilterConfig(required_behaviours=["backward_chaining"]))[0].startswith("behaviours: turn 2")
    assert check(_dialogue(T1, "Sure. \\boxed{12}"), FilterConfig(required_behaviours=[])) == []


@pytest.mark.parametrize(
    "kwargs, field",
    [({"filters": ["nope"]}, "filters"), ({"required_behaviours": ["luck"]}, "required_behaviours"),
     ({"min_tokens": 10, "max_tokens": 5}, "min_tokens"), ({"max_restatement": 0}, "max_restatement"),
     ({"repeat_ngram": 0}, "repeat_ngram")],
)  # fmt: skip
def test_filter_config_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        FilterConfig(**kwargs)


def test_acceptance_by_filter_and_template():
    rows = [(["a"], []), (["a"], ["length: long", "no_flip: x"]), (["b"], ["length: long"]), (["a", "b"], [])]
    out = acceptance(rows, ["length", "no_flip"])
    assert out["samples"] == 4 and out["kept"] == 2 and out["rate"] == 0.5
    assert out["by_filter"] == {"length": 0.5, "no_flip": 0.75}
    assert out["by_template"]["a"] == {"samples": 3, "kept": 2, "rate": 0.6667}
    assert out["by_template"]["b"] == {"samples": 2, "kept": 1, "rate": 0.5}


# --- phase 2 allocation: hand-computed targets ------------------------------------------------------------

RATES = {"easy": 1.0, "mid": 0.5, "hard": 0.25, "never": 0.0}


def test_uniform_and_band_targets():
    assert targets(RATES, "uniform", per_problem=3) == {"easy": 3, "mid": 3, "hard": 3}
    assert targets(RATES, "band", per_problem=2, band=(0.2, 0.6)) == {"easy": 0, "mid": 2, "hard": 2}


def test_prop2diff_targets_by_hand():
    # total 10 over 3 solved: one each, 7 spare split by fail rate (0, .5, .75) -> 0, 2.8, 4.2;
    # floors 0, 2, 4 leave 1, given to the largest remainder (mid's .8): easy 1, mid 4, hard 5
    assert targets(RATES, "prop2diff", total=10) == {"easy": 1, "mid": 4, "hard": 5}
    # default total = per_problem x solved = 6: spare 3 -> 0, 1.2, 1.8 -> floors 0, 1, 1, remainder to hard
    assert targets(RATES, "prop2diff", per_problem=2) == {"easy": 1, "mid": 2, "hard": 3}
    assert targets({"a": 1.0, "b": 1.0}, "prop2diff", total=4) == {"a": 2, "b": 2}  # no fail rate: even split
    with pytest.raises(ValueError, match="total"):
        targets(RATES, "prop2diff", total=2)
    with pytest.raises(ValueError, match="strategy"):
        targets(RATES, "hardest")


def test_select_rounds_hardest_first_under_budget():
    cands = [Candidate(pid, s, 100, RATES[pid]) for pid in ("easy", "mid", "hard") for s in range(3)]
    want = {"easy": 1, "mid": 2, "hard": 3}
    assert [(c.problem_id, c.sample) for c in select(cands, want)] == [
        ("hard", 0), ("mid", 0), ("easy", 0), ("hard", 1), ("mid", 1), ("hard", 2)]  # fmt: skip
    kept = select(cands, want, token_budget=450)
    assert [(c.problem_id, c.sample) for c in kept] == [("hard", 0), ("mid", 0), ("easy", 0), ("hard", 1)]
    short = [c for c in cands if not (c.problem_id == "hard" and c.sample > 0)]  # fewer available than wanted
    assert sum(c.problem_id == "hard" for c in select(short, want)) == 1


def test_pass_rate_estimate_stops_when_settled():
    lo, hi = wilson(3, 10)
    assert 0.10 < lo < 0.11 and 0.60 < hi < 0.61
    kw = {"max_samples": 16, "min_samples": 4, "settle_width": 0.5}
    assert not settled(0, 3, **kw) and settled(0, 8, **kw) and not settled(4, 8, **kw) and settled(8, 16, **kw)
    assert histogram([0.0, 0.05, 0.5, 1.0], bins=4) == [2, 0, 1, 1]


# --- the multi-turn dialogue over a scripted FAKE chat model ----------------------------------------------


def test_dialogue_turns_continue_while_the_answer_changes():
    import asyncio

    from fakes import FakeChatPolicy

    from sphere_ray.dialogue.dialogue import DialogueParams, run_dialogues
    from sphere_ray.search.types import Problem

    script = {
        (0, 1): ("S0 3 * 4 = 13. \\boxed{13}", "eos"),
        (0, 2): ("Wait, that is wrong: 3 * 4 = 12. \\boxed{12}", "eos"),  # changed -> a third turn
        (0, 3): ("Let me verify: 12 / 4 = 3. \\boxed{12}", "eos"),  # unchanged -> stop
        (1, 1): ("S1 3 * 4 = 12. \\boxed{12}", "eos"),
        (1, 2): ("Let me check: 12 / 3 = 4. \\boxed{12}", "eos"),
        (2, 1): ("S2 3 * 4 is a product of", "length"),  # truncated: no second turn
    }
    policy = FakeChatPolicy(script)
    problem = Problem(id="p7", problem="What is 3 * 4?", answer="12")
    params = DialogueParams(samples=3, max_turns=4, temperature=0.7, max_tokens=64, seed=1)
    dialogues = asyncio.run(run_dialogues(policy, problem, load_templates(), params))
    assert [len(d.turns) for d in dialogues] == [3, 2, 1]
    assert [d.correct for d in dialogues] == [[False, True, True], [True, True], [False]]
    assert dialogues[0].corrected and not dialogues[1].corrected
    t = dialogues[0].turns
    assert t[0].template_id is None and "\\boxed{}" in t[0].prompt  # the evaluation's answer prompt
    assert "13" in t[1].prompt and t[1].behaviour != t[2].behaviour  # turn 2 quotes the answer; turns rotate
    assert [len(r.prompts) for r in policy.requests] == [1, 2, 1] and policy.requests[0].n == 3
    assert all(r.seeds and len(set(r.seeds)) == len(r.prompts) for r in policy.requests[1:])
    again = asyncio.run(run_dialogues(FakeChatPolicy(script), problem, load_templates(), params))
    assert [d.template_ids for d in again] == [d.template_ids for d in dialogues]  # reproducible
    assert check(dialogues[0], FilterConfig(required_behaviours=[])) == []  # a kept correction chain
    reasons = check(dialogues[2], FilterConfig())
    assert any(r.startswith("not_truncated") for r in reasons) and any(r.startswith("final_correct") for r in reasons)
