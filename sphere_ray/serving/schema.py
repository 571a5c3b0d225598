"""Request and response schemas of the serving layer (pydantic, validated at the replica).

Two families:

* the batched step API used by the search through Serve handles: :class:`GenerateRequest` (many
  prompts × n samples) -> :class:`GenerateResponse`; :class:`ScoreRequest` -> :class:`ScoreResponse`;
* the OpenAI completions/chat subset spoken over HTTP by the policy apps.

Both generation backends (vLLM and transformers) take and return exactly these types.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ChatCompletionRequest",
    "ChatMessage",
    "CompletionRequest",
    "GenerateRequest",
    "GenerateResponse",
    "Sample",
    "ScoreItem",
    "ScoreRequest",
    "ScoreResponse",
    "StreamOptions",
]

MAX_PROMPTS = 4096
MAX_N = 64


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingFields(_Strict):
    """Sampling settings shared by the step API and the OpenAI API."""

    n: int = Field(1, ge=1, le=MAX_N, description="samples per prompt")
    temperature: float = Field(1.0, ge=0.0, le=5.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1, description="-1 or 0: off")
    max_tokens: int = Field(16, ge=1, le=32768)
    seed: int | None = Field(None, ge=0, lt=2**63)
    stop: list[str] = Field(default_factory=list, max_length=16)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, v: object) -> object:
        if v is None:
            return []
        return [v] if isinstance(v, str) else v

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        if any(not s for s in v):
            raise ValueError("stop strings must not be empty")
        return v


class GenerateRequest(SamplingFields):
    """``n`` samples for each of ``prompts`` (raw text: the chat template is already applied).

    ``seeds`` (optional) gives each prompt its own seed; otherwise prompt ``i`` uses ``seed + i``.
    """

    prompts: list[str] = Field(..., min_length=1, max_length=MAX_PROMPTS)
    seeds: list[int | None] | None = None

    @model_validator(mode="after")
    def _seeds_match_prompts(self) -> GenerateRequest:
        if self.seeds is not None and len(self.seeds) != len(self.prompts):
            raise ValueError(f"seeds has {len(self.seeds)} entries for {len(self.prompts)} prompts")
        return self


class Sample(_Strict):
    """One generated continuation.

    ``finish_reason``: ``"eos"`` (the model ended), ``"stop"`` (a stop string), ``"length"`` (max_tokens).
    """

    text: str
    num_tokens: int
    finish_reason: Literal["eos", "stop", "length"]


class GenerateResponse(_Strict):
    """``outputs[i]`` holds the ``n`` samples of ``prompts[i]``."""

    outputs: list[list[Sample]]
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    model: str = ""


class ScoreItem(_Strict):
    """Score the steps of one partial solution.

    ``answer`` (the ground truth) is needed by the Monte-Carlo PRM only.
    """

    question: str = Field(..., min_length=1)
    steps: list[str] = Field(..., min_length=1, max_length=256)
    only_last: bool = False
    answer: str | None = None


class ScoreRequest(_Strict):
    """A batch of step-scoring items."""

    items: list[ScoreItem] = Field(..., min_length=1, max_length=MAX_PROMPTS)


class ScoreResponse(_Strict):
    """``scores[i]``: one score in [0, 1] per step of ``items[i]`` (only the last if ``only_last``)."""

    scores: list[list[float]]
    model: str = ""


class StreamOptions(BaseModel):
    """OpenAI ``stream_options``."""

    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class CompletionRequest(SamplingFields):
    """OpenAI ``/v1/completions`` (the subset a math search needs; ``stream: true`` answers with events)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    prompt: str | list[str]
    stream: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("prompt list must not be empty")
        return v


class ChatMessage(_Strict):
    """One chat message."""

    role: Literal["system", "user", "assistant"]
    content: str


class ChatCompletionRequest(SamplingFields):
    """OpenAI ``/v1/chat/completions`` (text only)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
