"""The explored search tree: every sampled candidate, its scores, and which ones were kept."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from sphere_ray.search.types import STEP_SEPARATOR, Counters

Branch = Literal["max", "min"]
KEPT_PRUNED = "pruned"


@dataclass
class Node:
    """One candidate step.

    Attributes:
        id: index in :attr:`SearchTree.nodes`.
        parent: id of the parent step, or None for a child of the prompt (depth 0).
        depth: 0 for a first step.
        text: the step text.
        num_tokens: generated tokens.
        prm: PRM score p(s_t) of the step in its context, in [0, 1].
        reward: R(s_t) (plus the outcome reward on terminal steps in stage 2).
        terminal: the step ends its solution (final answer stated, end of sequence, or empty).
        kept: ``"max"``/``"min"`` for the step a branch kept, ``"pruned"`` otherwise.
        answer: the final answer the step states (terminal steps), or None.
        correct: whether ``answer`` matches the ground truth (terminal steps), or None.
    """

    id: int
    parent: int | None
    depth: int
    text: str
    num_tokens: int
    prm: float
    reward: float
    terminal: bool
    kept: str = KEPT_PRUNED
    answer: str | None = None
    correct: bool | None = None


@dataclass(frozen=True)
class Solution:
    """A root-to-leaf path kept by one branch.

    Attributes:
        branch: ``"max"`` (Sol_max) or ``"min"`` (Sol_min).
        node_ids: ids of the path's steps, root child first.
        steps: the step texts (empty steps, which end a path without content, left out).
        answer: the extracted final answer, None if the path never stated one.
        correct: whether the answer matches the ground truth (False when unfinished).
        finished: the path ended on a terminal step (not cut by ``max_depth``).
        score: mean step reward along the path.
    """

    branch: Branch
    node_ids: tuple[int, ...]
    steps: tuple[str, ...]
    answer: str | None
    correct: bool
    finished: bool
    score: float

    @property
    def text(self) -> str:
        """The solution as one text, steps joined by the step separator."""
        return STEP_SEPARATOR.join(self.steps)


@dataclass
class SearchTree:
    """Everything one pruned search explored.

    Attributes:
        kind: what was searched: ``"solve"`` (stage 1), ``"correct"`` (stage 2), ``"small"`` (stage 3).
        model: name of the policy that generated the steps.
        prompt: the rendered root prompt the steps continue.
        nodes: every candidate, in generation order.
        leaves: the last kept node of each branch.
        counters: cost of this search.
    """

    kind: str
    model: str
    prompt: str
    nodes: list[Node] = field(default_factory=list)
    leaves: dict[str, int] = field(default_factory=dict)
    counters: Counters = field(default_factory=Counters)

    def path(self, leaf: int) -> list[Node]:
        """Nodes from the root child down to ``leaf``."""
        out: list[Node] = []
        cur: int | None = leaf
        while cur is not None:
            out.append(self.nodes[cur])
            cur = self.nodes[cur].parent
        return out[::-1]

    def children(self, parent: int | None) -> list[Node]:
        """All candidates sampled under ``parent`` (None: under the prompt)."""
        return [n for n in self.nodes if n.parent == parent]

    def solution(self, branch: Branch) -> Solution:
        """The solution kept by ``branch``."""
        path = self.path(self.leaves[branch])
        last = path[-1]
        return Solution(
            branch=branch,
            node_ids=tuple(n.id for n in path),
            steps=tuple(n.text for n in path if n.text),
            answer=last.answer,
            correct=bool(last.correct),
            finished=last.terminal,
            score=sum(n.reward for n in path) / len(path),
        )

    def prefix_prompt(self, parent: int | None) -> str:
        """The text a child of ``parent`` continues: the prompt plus the path's steps."""
        if parent is None:
            return self.prompt
        return self.prompt + "".join(n.text + STEP_SEPARATOR for n in self.path(parent))

    def renumber(self, order: list[int]) -> None:
        """Reorder the nodes: ``order`` lists every current id in its new position; ids and links follow."""
        if sorted(order) != list(range(len(self.nodes))):
            raise ValueError(f"renumber: order must be a permutation of 0..{len(self.nodes) - 1}")
        new_id = {old: new for new, old in enumerate(order)}
        self.nodes = [self.nodes[old] for old in order]
        for node in self.nodes:
            node.id = new_id[node.id]
            node.parent = None if node.parent is None else new_id[node.parent]
        self.leaves = {branch: new_id[leaf] for branch, leaf in self.leaves.items()}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of the whole tree."""
        return {
            "kind": self.kind,
            "model": self.model,
            "prompt": self.prompt,
            "nodes": [asdict(n) for n in self.nodes],
            "leaves": dict(self.leaves),
            "counters": asdict(self.counters),
        }
