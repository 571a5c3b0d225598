"""SPHERE's three stages for one problem, and the preference pairs they yield.

Routing on the two stage-1 solutions (graded against the ground truth with
:func:`sphere_ray.grading.is_correct`):

* one right, one wrong -> **stage 1**: trajectory pair (the right one chosen).
* both wrong -> **stage 2**: the policy is shown its wrong Sol_max with the self-correction prompt and
  the same search runs, every terminal step's reward plus ORM(Sol). A right corrected solution becomes
  the chosen answer to the *original* prompt, against the wrong Sol_max; if the corrected search has
  one right and one wrong solution, that pair is emitted under the correction prompt too.
* both right -> **stage 3**: the small policy searches the original problem with 2E candidates; each
  distinct wrong solution it finds is a rejected sample against the (right) Sol_max.

Step-level pairs come from every expanded node of every tree the policy (not the small policy)
searched: the max-reward child (chosen) vs the min-reward child (rejected) under one prefix. A pair is
emitted only when the chosen step is known right (it lies on a right solution or is a right final
step), the rejected step is not known right, the two texts differ, and the chosen reward is higher.
No pair ever has a wrong chosen side or chosen == rejected.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

from sphere_ray.grading import is_correct
from sphere_ray.search.prompts import CORRECTION_TEMPLATE, SOLVE_TEMPLATE, render_template
from sphere_ray.search.pruned import pick_child, pruned_search
from sphere_ray.search.tree import Node, SearchTree, Solution
from sphere_ray.search.types import STEP_SEPARATOR, Counters, Models, Problem, SearchParams

__all__ = ["PreferencePair", "ProblemResult", "SphereParams", "default_orm", "sphere_search"]


def default_orm(problem: Problem, solution: str) -> float:
    """Outcome reward: 1.0 if ``solution``'s final answer matches ``problem.answer``, else 0.0."""
    return 1.0 if is_correct(solution, problem.answer, question=problem.problem) else 0.0


@dataclass(frozen=True)
class SphereParams:
    """Parameters of the three-stage search.

    Attributes:
        search: the pruned search's knobs (E, temperature, depth, tokens, seed) for stages 1 and 2.
        small_num_candidates: candidates per expansion for the small policy (paper: 2E); 0 means 2E.
        small_temperature: the small policy's sampling temperature; None means the search's. Stage 3 looks for
            wrong solutions to problems the policy solved, so a recipe that lowers the search temperature for a
            weak policy (to get right solutions at all) can keep the paper's 0.8 here.
        solve_template: user turn for stages 1 and 3 (``{problem}``).
        correction_template: user turn for stage 2 (``{problem}``, ``{solution}``).
        reference_fallback: when self-correction fails and the problem has a reference solution, pair it
            (as chosen, ending in ``\\boxed{answer}``) against the wrong Sol_max. Not in the paper (off by
            default): it gives a model too weak to ever correct itself an off-policy signal.
    """

    search: SearchParams = field(default_factory=SearchParams)
    small_num_candidates: int = 0
    small_temperature: float | None = None
    solve_template: str = SOLVE_TEMPLATE
    correction_template: str = CORRECTION_TEMPLATE
    reference_fallback: bool = False

    def __post_init__(self) -> None:
        if self.small_num_candidates < 0 or self.small_num_candidates == 1:
            raise ValueError(f"small_num_candidates must be 0 (=2E) or >= 2, got {self.small_num_candidates}")
        if self.small_temperature is not None and not 0.0 <= self.small_temperature <= 5.0:
            raise ValueError(f"small_temperature must be in [0, 5] or null, got {self.small_temperature}")
        render_template(self.solve_template, "solve_template", problem="p")
        render_template(self.correction_template, "correction_template", problem="p", solution="s")

    @property
    def small_search(self) -> SearchParams:
        """Search knobs of stage 3 (the small policy): E and the temperature replaced by the ``small_`` fields."""
        e = self.small_num_candidates or 2 * self.search.num_candidates
        t = self.search.temperature if self.small_temperature is None else self.small_temperature
        return SearchParams(**{**asdict(self.search), "num_candidates": e, "temperature": t})


@dataclass(frozen=True)
class PreferencePair:
    """One DPO pair in TRL's standard (plain text) preference format, plus provenance.

    Attributes:
        prompt: the text the chosen side continues (rendered chat prompt, plus the prefix steps for
            step-level pairs, each followed by a blank line).
        chosen: the preferred continuation (a step, or a whole solution).
        rejected: the dispreferred continuation.
        problem_id: id of the problem.
        stage: 1, 2 or 3 (which SPHERE stage produced it).
        level: ``"step"`` or ``"trajectory"``.
        prompt_kind: ``"solve"`` (the problem) or ``"correct"`` (the self-correction prompt).
        depth: step index of the pair's steps (step level), None for trajectories.
        chosen_score / rejected_score: reward of the step (step level) or mean step reward of the
            solution (trajectory level).
        chosen_correct / rejected_correct: known correctness of each side (None: unknown).
        chosen_model / rejected_model: the models that generated each side.
    """

    prompt: str
    chosen: str
    rejected: str
    problem_id: str
    stage: int
    level: str
    prompt_kind: str
    depth: int | None
    chosen_score: float
    rejected_score: float
    chosen_correct: bool | None
    rejected_correct: bool | None
    chosen_model: str
    rejected_model: str

    @property
    def pair_id(self) -> str:
        """A stable id: hash of the problem, stage, level, prompt and both sides."""
        key = "\x1f".join([self.problem_id, str(self.stage), self.level, self.prompt, self.chosen, self.rejected])
        return hashlib.sha256(key.encode()).hexdigest()[:24]


@dataclass
class ProblemResult:
    """Everything the search produced for one problem.

    Attributes:
        problem: the problem.
        stage: the stage it was routed to (1, 2 or 3).
        outcome: a short label, e.g. ``stage2_solved``, ``stage3_no_wrong``.
        trees: the explored trees, in search order.
        pairs: the preference pairs.
        counters: the cost summed over trees.
    """

    problem: Problem
    stage: int
    outcome: str
    trees: list[SearchTree]
    pairs: list[PreferencePair]
    counters: Counters

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary (trees included)."""
        return {
            "problem_id": self.problem.id,
            "stage": self.stage,
            "outcome": self.outcome,
            "trees": [t.to_dict() for t in self.trees],
            "counters": asdict(self.counters),
            "num_pairs": len(self.pairs),
        }


async def sphere_search(problem: Problem, models: Models, params: SphereParams) -> ProblemResult:
    """Run SPHERE stages 1-3 on one problem and collect its pairs.

    Args:
        problem: question plus ground-truth answer.
        models: policy, PRM, optional small policy and ORM.
        params: search parameters and prompt templates.

    Returns:
        The trees, the routed stage, and the step- and trajectory-level pairs.
    """
    solve_msg = render_template(params.solve_template, "solve_template", problem=problem.problem)
    t1 = await pruned_search(models.policy, models.prm, problem, solve_msg, params.search, "solve")
    hi, lo = t1.solution("max"), t1.solution("min")
    pairs = _step_pairs(t1, problem, 1, "solve")
    if hi.correct != lo.correct:
        right, wrong = (hi, lo) if hi.correct else (lo, hi)
        pairs.append(_trajectory_pair(t1.prompt, right, wrong, problem, 1, "solve", t1.model, t1.model))
        return _result(problem, 1, "stage1", [t1], pairs)
    if not hi.correct:
        return await _stage2(problem, models, params, t1, pairs)
    return await _stage3(problem, models, params, t1, pairs)


async def _stage2(
    problem: Problem, models: Models, params: SphereParams, t1: SearchTree, pairs: list[PreferencePair]
) -> ProblemResult:
    wrong = t1.solution("max")
    msg = render_template(
        params.correction_template, "correction_template", problem=problem.problem, solution=wrong.text
    )
    orm = models.orm or default_orm
    t2 = await pruned_search(models.policy, models.prm, problem, msg, params.search, "correct", outcome=orm)
    pairs += _step_pairs(t2, problem, 2, "correct")
    fixed = [s for s in (t2.solution("max"), t2.solution("min")) if s.correct]
    if fixed:
        pairs.append(_trajectory_pair(t1.prompt, fixed[0], wrong, problem, 2, "solve", t2.model, t1.model))
    if len(fixed) == 1:
        still_wrong = t2.solution("min" if fixed[0].branch == "max" else "max")
        pairs.append(_trajectory_pair(t2.prompt, fixed[0], still_wrong, problem, 2, "correct", t2.model, t2.model))
    if not fixed and params.reference_fallback and problem.solution:
        pairs.append(_reference_pair(t1.prompt, wrong, problem, t1.model))
        return _result(problem, 2, "stage2_reference", [t1, t2], pairs)
    return _result(problem, 2, "stage2_solved" if fixed else "stage2_unsolved", [t1, t2], pairs)


def _reference_pair(prompt: str, wrong: Solution, problem: Problem, wrong_model: str) -> PreferencePair:
    """The problem's reference solution (its lines as steps, the answer boxed unless it already is) vs a wrong one."""
    steps = [s.strip() for s in (problem.solution or "").splitlines() if s.strip()]
    if not any("\\boxed" in step for step in steps):
        steps.append(f"The answer is \\boxed{{{problem.answer}}}.")
    text = STEP_SEPARATOR.join(steps)
    return PreferencePair(
        prompt=prompt, chosen=text, rejected=wrong.text, problem_id=problem.id, stage=2, level="trajectory",
        prompt_kind="solve", depth=None, chosen_score=1.0, rejected_score=wrong.score, chosen_correct=True,
        rejected_correct=wrong.correct, chosen_model="reference", rejected_model=wrong_model,
    )  # fmt: skip


async def _stage3(
    problem: Problem, models: Models, params: SphereParams, t1: SearchTree, pairs: list[PreferencePair]
) -> ProblemResult:
    if models.small_policy is None:
        return _result(problem, 3, "stage3_skipped", [t1], pairs)
    solve_msg = render_template(params.solve_template, "solve_template", problem=problem.problem)
    t3 = await pruned_search(models.small_policy, models.prm, problem, solve_msg, params.small_search, "small")
    best = t1.solution("max")
    seen: set[str] = {best.text}
    for sol in (t3.solution("max"), t3.solution("min")):
        if not sol.correct and sol.text not in seen:
            seen.add(sol.text)
            pairs.append(_trajectory_pair(t1.prompt, best, sol, problem, 3, "solve", t1.model, t3.model))
    outcome = "stage3" if len(seen) > 1 else "stage3_no_wrong"
    return _result(problem, 3, outcome, [t1, t3], pairs)


def _result(problem: Problem, stage: int, outcome: str, trees: list[SearchTree], pairs: list) -> ProblemResult:
    total = Counters()
    for t in trees:
        total.add(t.counters)
    return ProblemResult(problem, stage, outcome, trees, pairs, total)


def _trajectory_pair(
    prompt: str, chosen: Solution, rejected: Solution, problem: Problem, stage: int, kind: str, cm: str, rm: str
) -> PreferencePair:
    return PreferencePair(
        prompt=prompt,
        chosen=chosen.text,
        rejected=rejected.text,
        problem_id=problem.id,
        stage=stage,
        level="trajectory",
        prompt_kind=kind,
        depth=None,
        chosen_score=chosen.score,
        rejected_score=rejected.score,
        chosen_correct=chosen.correct,
        rejected_correct=rejected.correct,
        chosen_model=cm,
        rejected_model=rm,
    )


def _known_correct(tree: SearchTree) -> dict[int, bool]:
    """Node id -> correctness, for nodes on a kept solution path and for terminal nodes."""
    known = {n.id: bool(n.correct) for n in tree.nodes if n.terminal}
    for branch in tree.leaves:
        sol = tree.solution(branch)  # type: ignore[arg-type]
        known.update({i: sol.correct for i in sol.node_ids})
    return known


def _step_pairs(tree: SearchTree, problem: Problem, stage: int, kind: str) -> list[PreferencePair]:
    known = _known_correct(tree)
    parents = [None] + [n.id for n in tree.nodes if n.kept != "pruned"]
    out = []
    for parent in parents:
        kids = tree.children(parent)
        if len(kids) < 2:
            continue
        ids = [k.id for k in kids]
        hi = tree.nodes[pick_child(tree, ids, "max")]
        lo = tree.nodes[pick_child(tree, [i for i in ids if i != hi.id], "min")]
        if known.get(hi.id) is True and known.get(lo.id) is not True and hi.text != lo.text and hi.reward > lo.reward:
            out.append(_step_pair(tree, parent, hi, lo, known.get(lo.id), problem.id, stage, kind))
    return out


def _step_pair(
    tree: SearchTree, parent: int | None, hi: Node, lo: Node, lo_correct: bool | None, pid: str, stage: int, kind: str
) -> PreferencePair:
    return PreferencePair(
        prompt=tree.prefix_prompt(parent),
        chosen=hi.text,
        rejected=lo.text,
        problem_id=pid,
        stage=stage,
        level="step",
        prompt_kind=kind,
        depth=hi.depth,
        chosen_score=hi.reward,
        rejected_score=lo.reward,
        chosen_correct=True,
        rejected_correct=lo_correct,
        chosen_model=tree.model,
        rejected_model=tree.model,
    )
