"""transformers backends: a step-sampling policy and an LLM-as-judge PRM, in process.

They satisfy the search protocols (:class:`sphere_ray.search.Policy`,
:class:`sphere_ray.search.ProcessRewardModel`). Model calls run in a worker thread so the event loop
stays free; one lock serialises them (a model is not re-entrant).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from sphere_ray.search.types import STEP_SEPARATOR, PrmRequest, StepRequest, StepSample

__all__ = ["HFJudgePRM", "HFPolicy", "load_causal_lm"]

log = logging.getLogger(__name__)

JUDGE_TEMPLATE = (
    "Here is a math problem and a partial solution.\n\nProblem: {question}\n\nSolution so far:\n\n{steps}\n\n"
    "Is the last step of this solution correct? Answer Yes or No."
)


def load_causal_lm(path: str, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False):  # noqa: ANN201
    """Load a causal LM and its tokenizer (left padding, pad token set) in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, dtype), trust_remote_code=trust_remote_code
    ).to(device)
    model.eval()
    return model, tok


def render_chat(tokenizer, user_message: str) -> str:  # noqa: ANN001
    """One user turn through the tokenizer's chat template (plain text if it has none)."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": user_message}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return f"{user_message}\n\nSolution:\n\n"


class HFPolicy:
    """Samples next steps with ``model.generate`` (stop at the step separator).

    Args:
        path: model folder or hub name (already resolved, see :func:`sphere_ray.models.embedded.resolve_model`).
        name: the name recorded in trees and pairs.
        batch_size: most sequences (prompts × n) per ``generate`` call.
    """

    def __init__(self, path: str, name: str, dtype: str = "float32", device: str = "cpu", batch_size: int = 32) -> None:
        self.name = name
        self.model, self.tokenizer = load_causal_lm(path, dtype, device)
        self.device = device
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def render_prompt(self, user_message: str) -> str:
        """Render one user turn with the chat template, ready for the assistant's answer."""
        return render_chat(self.tokenizer, user_message)

    async def sample_steps(self, requests: Sequence[StepRequest]) -> list[list[StepSample]]:
        """``request.n`` next-step samples for each request (see the Policy protocol)."""
        return await asyncio.to_thread(self._sample_all, list(requests))

    def _sample_all(self, requests: list[StepRequest]) -> list[list[StepSample]]:
        with self._lock:
            return [s for group in _groups(requests, self.batch_size) for s in self._sample(group)]

    def _sample(self, requests: list[StepRequest]) -> list[list[StepSample]]:
        import torch

        first = requests[0]
        torch.manual_seed(first.seed if first.seed is not None else 0)
        enc = self.tokenizer([r.prompt for r in requests], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(self.device)
        with torch.inference_mode():
            out = self.model.generate(
                **enc,
                do_sample=first.temperature > 0,
                temperature=first.temperature if first.temperature > 0 else None,
                top_p=1.0,
                top_k=0,
                max_new_tokens=first.max_tokens,
                num_return_sequences=first.n,
                stop_strings=list(first.stop),
                tokenizer=self.tokenizer,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        samples = [self._decode(row, first.stop) for row in new]
        return [samples[i * first.n : (i + 1) * first.n] for i in range(len(requests))]

    def _decode(self, tokens, stop: tuple[str, ...]) -> StepSample:  # noqa: ANN001
        """Cut at the stop string; ``finished`` = ended by end-of-sequence (not stop string, not length)."""
        ends = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        ids = tokens.tolist()
        n = len(ids)
        while n and ids[n - 1] in ends:
            n -= 1
        text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
        hit_stop = any(s in text for s in stop)
        for s in stop:
            text = text.split(s, 1)[0]
        return StepSample(text=text.strip(), num_tokens=n, finished=n < len(ids) and not hit_stop)


def _groups(requests: list[StepRequest], batch_size: int) -> list[list[StepRequest]]:
    """Split requests into ``generate`` batches sharing sampling settings, at most ``batch_size`` sequences."""
    groups: list[list[StepRequest]] = []
    for r in requests:
        key = (r.n, r.temperature, r.max_tokens, r.stop)
        last = groups[-1] if groups else None
        if (
            last
            and (last[0].n, last[0].temperature, last[0].max_tokens, last[0].stop) == key
            and (len(last) + 1) * r.n <= batch_size
        ):
            last.append(r)
        else:
            groups.append([r])
    return groups


class HFJudgePRM:
    """LLM-as-judge PRM: p(step correct) = P("Yes") / (P("Yes") + P("No")) for the verdict token.

    The judge is asked about the last step given the problem and the previous steps. With
    ``only_last`` only that step is judged; otherwise every prefix is judged (one forward pass each).
    """

    def __init__(self, path: str, name: str, dtype: str = "float32", device: str = "cpu", batch_size: int = 16) -> None:
        self.name = name
        self.model, self.tokenizer = load_causal_lm(path, dtype, device)
        self.device = device
        self.batch_size = batch_size
        self._yes = self._token_ids(["Yes", " Yes", "yes"])
        self._no = self._token_ids(["No", " No", "no"])
        self._lock = threading.Lock()

    def _token_ids(self, words: list[str]) -> list[int]:
        ids = {self.tokenizer.encode(w, add_special_tokens=False)[0] for w in words}
        return sorted(ids)

    async def score_steps(self, requests: Sequence[PrmRequest]) -> list[list[float]]:
        """Per-step judge scores in [0, 1] (only the last step's if ``only_last``)."""
        return await asyncio.to_thread(self._score_all, list(requests))

    def _score_all(self, requests: list[PrmRequest]) -> list[list[float]]:
        prompts: list[str] = []
        owners: list[int] = []
        for i, r in enumerate(requests):
            ends = [len(r.steps)] if r.only_last else range(1, len(r.steps) + 1)
            for end in ends:
                prompts.append(self._judge_prompt(r.question, r.steps[:end]))
                owners.append(i)
        scores: list[float] = []
        with self._lock:
            for start in range(0, len(prompts), self.batch_size):
                scores += self._judge(prompts[start : start + self.batch_size])
        out: list[list[float]] = [[] for _ in requests]
        for owner, score in zip(owners, scores, strict=True):
            out[owner].append(score)
        return out

    def _judge_prompt(self, question: str, steps: Sequence[str]) -> str:
        message = JUDGE_TEMPLATE.format(question=question, steps=STEP_SEPARATOR.join(steps))
        return render_chat(self.tokenizer, message)

    def _judge(self, prompts: list[str]) -> list[float]:
        import torch

        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.inference_mode():
            logits = self.model(**enc).logits[:, -1, :].float()
        probs = torch.softmax(logits, dim=-1)
        yes = probs[:, self._yes].sum(-1)
        no = probs[:, self._no].sum(-1)
        return (yes / (yes + no).clamp_min(1e-12)).tolist()
