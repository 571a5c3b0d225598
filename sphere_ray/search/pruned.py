"""SPHERE's pruned tree search for one prompt (arXiv 2503.04813, section 3.1).

Algorithm, as implemented:

1. Expand the prompt: the policy samples E candidate first steps (temperature 0.8 in the paper).
   Generation stops at the step separator (a blank line).
2. The PRM scores each candidate in its context (the question plus the path's steps): p(s_t).
3. Reward: ``R(s_0) = p(s_0)``; ``R(s_t) = p(s_t) + (p(s_t) - p(s_{t-1})) / max(p(s_{t-1}), eps)``.
4. Keep the max-reward child (branch ``max``) and the min-reward child (branch ``min``); every other
   candidate is pruned (kept in the tree with ``kept="pruned"``, never expanded).
5. Each branch then expands only its own node, E candidates again, and keeps its max (branch ``max``)
   or min (branch ``min``) child, until the kept step is terminal or the path has ``max_depth`` steps.
   The two branches run concurrently and independently (one branch's PRM call overlaps the other's
   sampling); node ids are renumbered at the end in a fixed order (depth, then ``max`` before ``min``)
   and seeds depend on a node's place in the tree, not on timing, so a search is reproducible.
6. A step is terminal when it states a final answer (:func:`sphere_ray.grading.extract_answer`),
   when the model ended its output (end of sequence), or when it is empty.
7. Answer forcing (``answer_prefix``, not in the paper; off by default): a branch that stops without a
   final answer gets one more expansion whose E candidates continue the prompt, the path and the prefix
   (e.g. ``The final answer is \\boxed{``), one line each; they are scored and picked like any other step,
   and are terminal.

Decisions where the paper is ambiguous:

* ``π`` in the paper's reward (eq. 3) is read as the PRM score p of the step *in its context*;
  ``p(s_{t-1})`` is the PRM score of the kept parent step. ``eps`` (default 1e-3) guards p ≈ 0.
* Pruning is per branch: after the root, the max branch never looks at the min branch's nodes and
  vice versa (no global frontier); this is the "keep only the max and min step" reading.
* Ties: the max child is the first candidate with the highest reward, the min child the last
  candidate with the lowest reward among the others, so the two branches always start apart.
* Stage 2's outcome reward ORM(Sol) needs a finished solution, so it is added to the reward of
  terminal steps only (a non-terminal step has no solution yet); this makes each branch prefer
  (max) or avoid (min) correct finishes among its candidates.
* The PRM is always asked about the original problem text, also when the policy was prompted with
  the self-correction prompt (stage 2): the PRM judges the steps as a solution of the problem.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import Sequence

from sphere_ray.grading import extract_answer, is_correct
from sphere_ray.search.tree import Branch, Node, SearchTree
from sphere_ray.search.types import (
    STEP_SEPARATOR,
    OutcomeReward,
    Policy,
    PrmRequest,
    Problem,
    ProcessRewardModel,
    SearchParams,
    StepRequest,
    StepSample,
)

__all__ = ["pick_child", "pruned_search", "step_reward"]


def step_reward(p: float, p_prev: float | None, eps: float = 1e-3) -> float:
    """SPHERE's step reward: ``p`` for a first step, else ``p + (p - p_prev) / max(p_prev, eps)``."""
    if p_prev is None:
        return p
    return p + (p - p_prev) / max(p_prev, eps)


async def pruned_search(
    policy: Policy,
    prm: ProcessRewardModel,
    problem: Problem,
    user_message: str,
    params: SearchParams,
    kind: str = "solve",
    outcome: OutcomeReward | None = None,
) -> SearchTree:
    """Run the pruned max/min search for one prompt.

    Args:
        policy: samples candidate steps.
        prm: scores steps.
        problem: the problem (its ``answer`` grades terminal steps; its text goes to the PRM).
        user_message: the user turn the policy answers (the problem, or a self-correction prompt).
        params: E, temperature, depth and token limits, seed.
        kind: label stored in the tree (``solve``/``correct``/``small``); also salts the seeds.
        outcome: if given, added to the reward of every terminal step (stage 2).

    Returns:
        The explored tree; ``tree.leaves`` holds the last kept node of branches ``max`` and ``min``.
    """
    tree = SearchTree(kind=kind, model=policy.name, prompt=await policy.render_prompt(user_message))
    ctx = _Ctx(policy, prm, problem, params, outcome, tree)
    (root_children,) = await ctx.expand([None])
    best = pick_child(tree, root_children, "max")
    worst = pick_child(tree, [c for c in root_children if c != best], "min")
    tree.nodes[best].kept, tree.nodes[worst].kept = "max", "min"
    leaves = await asyncio.gather(ctx.follow("max", best), ctx.follow("min", worst))
    tree.leaves = {"max": leaves[0], "min": leaves[1]}
    tree.renumber(sorted(range(len(tree.nodes)), key=lambda i: _canonical_key(tree, i)))
    return tree


def _canonical_key(tree: SearchTree, node_id: int) -> tuple[int, int, int]:
    """Depth, then the parent's branch (``max`` first), then generation order within one expansion."""
    node = tree.nodes[node_id]
    parent_branch = None if node.parent is None else tree.nodes[node.parent].kept
    return node.depth, 1 if parent_branch == "min" else 0, node_id


def pick_child(tree: SearchTree, ids: Sequence[int], branch: Branch) -> int:
    """First id with the highest reward (``max``) or last id with the lowest (``min``)."""
    if branch == "max":
        return max(ids, key=lambda i: (tree.nodes[i].reward, -i))
    return min(ids, key=lambda i: (tree.nodes[i].reward, -i))


class _Ctx:
    """State shared by the expansions of one search."""

    def __init__(self, policy, prm, problem, params, outcome, tree) -> None:  # noqa: ANN001 - private
        self.policy: Policy = policy
        self.prm: ProcessRewardModel = prm
        self.problem: Problem = problem
        self.params: SearchParams = params
        self.outcome: OutcomeReward | None = outcome
        self.tree: SearchTree = tree

    def expandable(self, node_id: int) -> bool:
        node = self.tree.nodes[node_id]
        return not node.terminal and node.depth + 1 < self.params.max_depth

    def seed(self, parent: int | None, lead: str = "") -> int:
        """Keyed by the parent's place (its branch and depth), which does not depend on timing."""
        place = "root" if parent is None else f"{self.tree.nodes[parent].kept}{self.tree.nodes[parent].depth}"
        key = f"{self.params.seed}:{self.problem.id}:{self.tree.kind}:{place}" + (":answer" if lead else "")
        return zlib.crc32(key.encode()) & 0x7FFFFFFF

    async def follow(self, branch: Branch, node: int) -> int:
        """Expand ``branch`` from its kept ``node`` until it ends; return its last kept node."""
        while self.expandable(node):
            (children,) = await self.expand([node])
            node = self.keep(branch, children)
        if self.params.answer_prefix and self.tree.nodes[node].answer is None:
            (children,) = await self.expand([node], lead=self.params.answer_prefix)
            node = self.keep(branch, children)
        return node

    def keep(self, branch: Branch, children: list[int]) -> int:
        node = pick_child(self.tree, children, branch)
        self.tree.nodes[node].kept = branch
        return node

    async def expand(self, parents: list[int | None], lead: str = "") -> list[list[int]]:
        """Sample E children under each parent (one batched policy + PRM call); return their ids.

        A non-empty ``lead`` (answer forcing) is appended to each prompt and starts each child's text; each
        child is one line (generation also stops at a newline) and is terminal.
        """
        samples = await self._sample(parents, lead)
        if lead:
            samples = [[StepSample(lead + s.text, s.num_tokens, True) for s in ss] for ss in samples]
        scores = iter(await self._score(parents, samples))
        return [[self._add_node(par, s, next(scores)) for s in ss] for par, ss in zip(parents, samples, strict=True)]

    async def _sample(self, parents: list[int | None], lead: str) -> list[list[StepSample]]:
        p = self.params
        requests = [
            StepRequest(
                self.tree.prefix_prompt(par) + lead,
                p.num_candidates,
                p.temperature,
                p.max_step_tokens,
                self.seed(par, lead),
                (STEP_SEPARATOR, "\n") if lead else (STEP_SEPARATOR,),
            )
            for par in parents
        ]
        start = time.monotonic()
        samples = await self.policy.sample_steps(requests)
        _check_samples(samples, len(requests))
        c = self.tree.counters
        c.policy_seconds += time.monotonic() - start
        c.policy_calls += 1
        c.step_generations += sum(len(ss) for ss in samples)
        c.generated_tokens += sum(s.num_tokens for ss in samples for s in ss)
        return samples

    async def _score(self, parents: list[int | None], samples: list[list[StepSample]]) -> list[float]:
        requests = [
            PrmRequest(self.problem.problem, (*self._steps(par), s.text.strip()), True, self.problem.answer)
            for par, ss in zip(parents, samples, strict=True)
            for s in ss
        ]
        start = time.monotonic()
        scores = await self.prm.score_steps(requests)
        self.tree.counters.prm_seconds += time.monotonic() - start
        if len(scores) != len(requests):
            raise RuntimeError(f"PRM returned {len(scores)} score lists for {len(requests)} requests")
        self.tree.counters.prm_calls += len(requests)
        self.tree.counters.prm_batches += 1
        return [_last_score(s) for s in scores]

    def _steps(self, parent: int | None) -> tuple[str, ...]:
        return () if parent is None else tuple(n.text for n in self.tree.path(parent))

    def _add_node(self, parent: int | None, sample: StepSample, p: float) -> int:
        prev = None if parent is None else self.tree.nodes[parent]
        text = sample.text.strip()
        answer = extract_answer(text)
        node = Node(
            id=len(self.tree.nodes),
            parent=parent,
            depth=0 if prev is None else prev.depth + 1,
            text=text,
            num_tokens=sample.num_tokens,
            prm=p,
            reward=step_reward(p, None if prev is None else prev.prm, self.params.eps),
            terminal=sample.finished or not text or answer is not None,
        )
        if node.terminal:
            node.answer = answer
            node.correct = is_correct(text, self.problem.answer, question=self.problem.problem)
            if self.outcome is not None:
                solution = STEP_SEPARATOR.join((*self._steps(parent), text))
                node.reward += float(self.outcome(self.problem, solution))
        self.tree.nodes.append(node)
        return node.id


def _check_samples(samples: list[list[StepSample]], expected: int) -> None:
    if len(samples) != expected:
        raise RuntimeError(f"policy returned {len(samples)} sample lists for {expected} requests")
    if any(len(ss) == 0 for ss in samples):
        raise RuntimeError("policy returned no sample for a request")


def _last_score(scores: Sequence[float]) -> float:
    """The new step's score (the last one), clamped to [0, 1]; NaN counts as 0."""
    if not scores:
        raise RuntimeError("PRM returned no score for a step")
    value = float(scores[-1])
    return 0.0 if math.isnan(value) else min(1.0, max(0.0, value))
