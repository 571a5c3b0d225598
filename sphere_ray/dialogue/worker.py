"""The SFT data job's Ray Data UDF and its output tables: one problem in, its samples filtered out.

Phase 1 output folder (:class:`~sphere_ray.generation.store.OutputStore` with layout ``SFT_DATA``)::

    sft/             kept samples, TRL conversational prompt-completion: ``prompt`` (the user turn),
                     ``completion`` (one assistant message: the turns merged, only the last answer boxed)
    sft_multiturn/   the same samples as TRL conversational ``messages`` (every turn)
    rejects/         dropped samples (``row`` = sample index, ``reason`` = every failed rule) and failed problems
    problems/        one row per finished problem (the commit marker): samples, kept, correct first/last

Phase 2 (layout ``PHASE2``: one-turn samples of pi_sft until the pass rate settles)::

    candidates/      every rule-passing correct sample (the ``sft/`` schema)
    rejects/, problems/   as Phase 1's (``problems/``: samples drawn and correct: the pass rate)
    sft/             the allocated samples (:func:`~sphere_ray.dialogue.rejection.allocate`), rewritten at the
                     end of every run from everything committed
    never_solved/    problems with no correct sample: ``problem_id``, ``source``, ``samples``

Every sample row carries provenance: ``problem_id``, ``sample``, ``source``, ``template_ids``,
``behaviours`` (asked for), ``turns``, ``answers`` and ``correct`` per turn, ``corrected`` (wrong then
right), ``tokens``, ``behaviour_counts`` (cue detector, all turns after the first), ``judged_behaviours``
(the LLM judge's verdict over the same turns; null without ``judge_app`` or when it never answered usably)
and ``config_hash``.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from sphere_ray.dialogue.behaviours import behaviour_counts
from sphere_ray.dialogue.dialogue import DialogueParams, judge_turns, run_dialogues
from sphere_ray.dialogue.filters import FilterConfig, check
from sphere_ray.dialogue.rejection import PassRateParams, sample_until_settled
from sphere_ray.dialogue.sample import Dialogue, conversation, merged_completion
from sphere_ray.dialogue.templates import BEHAVIOURS, load_templates
from sphere_ray.generation.store import REJECT_SCHEMA, Layout
from sphere_ray.generation.worker import BatchWorkerMixin, RetryingWorker
from sphere_ray.search.types import Problem

__all__ = ["NEVER_SOLVED_SCHEMA", "PHASE2", "SFT_DATA", "DialogueBatchWorker", "DialogueWorker"]

MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
PROVENANCE = [
    pa.field("problem_id", pa.string(), nullable=False),
    pa.field("sample", pa.int32(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("template_ids", pa.list_(pa.string())),
    pa.field("behaviours", pa.list_(pa.string())),
    pa.field("turns", pa.int32()),
    pa.field("answers", pa.list_(pa.string())),
    pa.field("correct", pa.list_(pa.bool_())),
    pa.field("corrected", pa.bool_()),
    pa.field("tokens", pa.int64()),
    pa.field("behaviour_counts", pa.struct([(b, pa.int32()) for b in BEHAVIOURS])),
    pa.field("judged_behaviours", pa.list_(pa.string())),
    pa.field("config_hash", pa.string()),
]
SFT_SCHEMA = pa.schema([pa.field("prompt", MESSAGES), pa.field("completion", MESSAGES), *PROVENANCE])
MULTITURN_SCHEMA = pa.schema([pa.field("messages", MESSAGES), *PROVENANCE])
PROBLEM_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("samples", pa.int32()),
        pa.field("kept", pa.int32()),
        pa.field("first_correct", pa.int32()),
        pa.field("final_correct", pa.int32()),
        pa.field("corrected", pa.int32()),
        pa.field("generated_tokens", pa.int64()),
        pa.field("seconds", pa.float64()),
        pa.field("attempts", pa.int32()),
    ]
)
SFT_DATA = Layout(
    "problems",
    {"sft": SFT_SCHEMA, "sft_multiturn": MULTITURN_SCHEMA, "rejects": REJECT_SCHEMA, "problems": PROBLEM_SCHEMA},
)
NEVER_SOLVED_SCHEMA = pa.schema(
    [
        pa.field("problem_id", pa.string(), nullable=False),
        pa.field("source", pa.string()),
        pa.field("samples", pa.int32()),
    ]
)
PHASE2 = Layout(
    "problems",
    {"candidates": SFT_SCHEMA, "rejects": REJECT_SCHEMA, "problems": PROBLEM_SCHEMA, "sft": SFT_SCHEMA,
     "never_solved": NEVER_SOLVED_SCHEMA},
)  # fmt: skip
"""Phase 2's folder: workers commit ``candidates``, ``rejects`` and ``problems``; the driver writes ``sft`` and
``never_solved`` once all problems are done (parts not named in a commit: a rerun's recovery removes them)."""


class DialogueWorker(RetryingWorker):
    """Callable class for ``Dataset.map``: the dialogues of one problem per call, filtered into rows.

    Args:
        policy_app: Serve app of the model.
        params: :class:`DialogueParams` fields.
        filters: :class:`FilterConfig` fields.
        templates / behaviours: the template pool (:func:`load_templates`).
        config_hash / system_prompt: recorded in the rows.
        pass_rate: Phase 2 (:class:`~sphere_ray.dialogue.rejection.PassRateParams` fields): one-turn samples
            until the pass rate settles, kept rows to ``candidates``; ``None``: Phase 1's dialogues.
        judge_app: Serve app of the LLM behaviour judge (None: the cue detector alone).
        judge_max_tokens: token budget of one verdict.
        call_timeout_s / call_retries / affinity: as :class:`~sphere_ray.generation.worker.ProblemWorker`'s.
        **retrying: :class:`RetryingWorker` arguments.
    """

    def __init__(
        self, policy_app: str, params: dict[str, Any], filters: dict[str, Any], templates: str | None,
        behaviours: list[str] | None, config_hash: str, system_prompt: str | None = None,
        pass_rate: dict[str, Any] | None = None, judge_app: str | None = None, judge_max_tokens: int = 64,
        call_timeout_s: float = 600.0, call_retries: int = 3, affinity: bool = True, **retrying: Any,
    ) -> None:  # fmt: skip
        from sphere_ray.serving.client import ServePolicy

        super().__init__(**retrying)
        self.policy = ServePolicy(policy_app, timeout_s=call_timeout_s, retries=call_retries)
        self.judge = ServePolicy(judge_app, timeout_s=call_timeout_s, retries=call_retries) if judge_app else None
        self.judge_max_tokens = judge_max_tokens
        self.params, self.filters = DialogueParams(**params), FilterConfig(**filters)
        self.pool = load_templates(templates, behaviours)
        self.config_hash, self.system_prompt, self.affinity = config_hash, system_prompt, affinity
        self.pass_rate = PassRateParams(**pass_rate) if pass_rate is not None else None

    async def attempt(self, problem: Problem) -> list[Dialogue]:
        """The problem's dialogues or Phase-2 samples (one problem's calls share one replica under affinity), judged."""
        policy = self.policy.for_session(problem.id) if self.affinity else self.policy
        if self.pass_rate is not None:
            dialogues = await sample_until_settled(policy, problem, self.pool, self.params, self.pass_rate)
        else:
            dialogues = await run_dialogues(policy, problem, self.pool, self.params)
        if self.judge is not None:
            judge = self.judge.for_session(problem.id) if self.affinity else self.judge
            dialogues = await judge_turns(judge, dialogues, self.judge_max_tokens)
        return dialogues

    def payload(self, problem: Problem, result: list[Dialogue], attempts: int, seconds: float) -> dict[str, Any]:
        """``{problems: [marker row], sft: [...], sft_multiturn: [...], rejects: [...]}`` (Phase 2: ``candidates``)."""
        out: dict[str, list] = {"sft": [], "sft_multiturn": [], "rejects": []}
        for d in result:
            reasons = check(d, self.filters)
            prov = self._provenance(d, problem)
            if reasons:
                keys = ("template_ids", "answers", "correct", "behaviour_counts", "judged_behaviours")
                raw = json.dumps({"reasons": reasons, **{k: prov[k] for k in keys},
                                  "completion": merged_completion(d)[:1500]})  # fmt: skip
                out["rejects"].append({"problem_id": problem.id, "source": problem.source, "row": d.sample,
                                       "reason": "; ".join(reasons)[:2000], "raw": raw})  # fmt: skip
                continue
            messages = conversation(d, self.system_prompt)
            head = messages[: 2 if self.system_prompt else 1]
            completion = [{"role": "assistant", "content": merged_completion(d)}]
            out["sft"].append({"prompt": head, "completion": completion, **prov})
            out["sft_multiturn"].append({"messages": messages, **prov})
        out["problems"] = [{
            "problem_id": problem.id, "source": problem.source, "samples": len(result), "kept": len(out["sft"]),
            "first_correct": sum(d.correct[0] for d in result), "final_correct": sum(d.correct[-1] for d in result),
            "corrected": sum(d.corrected for d in result), "generated_tokens": sum(d.tokens for d in result),
            "seconds": seconds, "attempts": attempts,
        }]  # fmt: skip
        if self.pass_rate is not None:
            out["candidates"] = out.pop("sft")
            del out["sft_multiturn"]
        return out

    def _provenance(self, d: Dialogue, problem: Problem) -> dict[str, Any]:
        later = "\n\n".join(t.text for t in d.turns[1:])
        verdicts = [t.judged for t in d.examined_turns if t.judged is not None]
        return {
            "problem_id": d.problem_id, "sample": d.sample, "source": problem.source, "template_ids": d.template_ids,
            "behaviours": [t.behaviour for t in d.turns[1:] if t.behaviour], "turns": len(d.turns),
            "answers": [a or "" for a in d.answers], "correct": d.correct, "corrected": d.corrected,
            "tokens": d.tokens, "behaviour_counts": behaviour_counts(later), "config_hash": self.config_hash,
            "judged_behaviours": sorted(set().union(*verdicts)) if verdicts else None,
        }  # fmt: skip


class DialogueBatchWorker(BatchWorkerMixin, DialogueWorker):
    """:class:`DialogueWorker` over a whole Ray Data block (:class:`BatchWorkerMixin`)."""
