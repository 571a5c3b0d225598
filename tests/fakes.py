"""Scripted FAKE models for golden tests of the pure search logic (no real model anywhere here).

``FakePolicy`` answers from a script keyed by (prompt kind, steps so far); ``FakePRM`` scores a step by
its text. Both record every request so tests can check what the search asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

from sphere_ray.search import STEP_SEPARATOR, PrmRequest, StepRequest, StepSample

ROOT_END = "\n<assistant>\n"


class FakePolicy:
    """A scripted policy: ``script[(kind, steps)]`` lists the samples (text or (text, finished))."""

    def __init__(self, script: dict, name: str = "fake-policy") -> None:
        self.name = name
        self.script = script
        self.requests: list[StepRequest] = []

    async def render_prompt(self, user_message: str) -> str:
        return f"<user>\n{user_message}{ROOT_END}"

    @staticmethod
    def parse(prompt: str) -> tuple[str, tuple[str, ...]]:
        root, rest = prompt.split(ROOT_END, 1)
        kind = "correct" if "contains an error" in root else "solve"
        steps = tuple(rest.split(STEP_SEPARATOR)[:-1]) if rest else ()
        return kind, steps

    async def sample_steps(self, requests: Sequence[StepRequest]) -> list[list[StepSample]]:
        out = []
        for r in requests:
            self.requests.append(r)
            samples = self.script[self.parse(r.prompt)]
            assert len(samples) == r.n, f"script has {len(samples)} samples for n={r.n}"
            out.append([_sample(s) for s in samples])
        return out


def _sample(s) -> StepSample:
    text, finished = (s, False) if isinstance(s, str) else s
    return StepSample(text=text, num_tokens=10, finished=finished)


class FakePRM:
    """Scores the last step by its text: ``scores[text]``."""

    name = "fake-prm"

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.requests: list[PrmRequest] = []

    async def score_steps(self, requests: Sequence[PrmRequest]) -> list[list[float]]:
        self.requests.extend(requests)
        return [[0.5] * (len(r.steps) - 1) + [self.scores[r.steps[-1]]] for r in requests]


class FakeChatPolicy:
    """A scripted chat model (the dialogue's ``ChatPolicy``): ``script[(sample, turn)] = (text, finish_reason)``.

    ``render_chat`` writes the messages as JSON, so a turn's prompt shows the whole conversation; the
    sample of a later turn is read from its first assistant message (``script[(i, 1)]`` must name ``S<i>``).
    """

    def __init__(self, script: dict) -> None:
        self.script = script
        self.requests: list = []

    async def render_chat(self, messages) -> str:
        import json

        return json.dumps(list(messages))

    async def generate(self, request):
        import json

        from sphere_ray.serving.schema import GenerateResponse, Sample

        self.requests.append(request)
        outputs = []
        for prompt in request.prompts:
            messages = json.loads(prompt)
            turn = sum(m["role"] == "user" for m in messages)
            if turn == 1:
                keys = [(i, 1) for i in range(request.n)]
            else:
                first = next(m["content"] for m in messages if m["role"] == "assistant")
                keys = [(int(first.split("S", 1)[1].split()[0]), turn)]
            outputs.append([Sample(text=self.script[k][0], num_tokens=len(self.script[k][0].split()),
                                   finish_reason=self.script[k][1]) for k in keys])  # fmt: skip
        return GenerateResponse(outputs=outputs, prompt_tokens=0, cached_prompt_tokens=0, model="fake-chat")
