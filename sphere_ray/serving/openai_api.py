"""The OpenAI-compatible answers of a generation app: whole responses and streamed chunks (server-sent events).

``/v1/completions`` and ``/v1/chat/completions`` answer as OpenAI does: choices numbered across prompts
(prompt ``i``, sample ``j`` -> ``i * n + j``), ``finish_reason`` ``stop`` or ``length``, usage with cached
prompt tokens. With ``stream: true`` the answer is ``text/event-stream``: one ``data: {chunk}`` event per
text delta (``text_completion`` / ``chat.completion.chunk``; a chat choice's first delta carries the
role), the finish reason on each choice's last chunk, a usage chunk when ``stream_options.include_usage``,
then ``data: [DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from sphere_ray.serving.engines import StreamDelta
from sphere_ray.serving.schema import ChatCompletionRequest, CompletionRequest, GenerateResponse, Sample

__all__ = ["events", "response", "sampling"]


def sampling(body: CompletionRequest | ChatCompletionRequest) -> dict[str, Any]:
    """The sampling fields of an OpenAI request, as :class:`~sphere_ray.serving.schema.GenerateRequest` fields."""
    return body.model_dump(include={"n", "temperature", "top_p", "top_k", "max_tokens", "seed", "stop"})


def _finish(reason: str | None) -> str | None:
    return None if reason is None else ("length" if reason == "length" else "stop")


def _head(chat: bool, model: str) -> dict[str, Any]:
    kind = "chat.completion.chunk" if chat else "text_completion"
    return {"id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}", "object": kind,
            "created": int(time.time()), "model": model}  # fmt: skip


def response(result: GenerateResponse, chat: bool) -> dict[str, Any]:
    """The whole OpenAI response of a generate result."""
    body: Callable[[Sample], dict[str, Any]] = (
        (lambda s: {"message": {"role": "assistant", "content": s.text}}) if chat else (lambda s: {"text": s.text})
    )
    choices = [{"index": i * len(samples) + j, **body(s), "finish_reason": _finish(s.finish_reason),
                "stop_reason": s.finish_reason, "logprobs": None}
               for i, samples in enumerate(result.outputs) for j, s in enumerate(samples)]  # fmt: skip
    completion = sum(s.num_tokens for ss in result.outputs for s in ss)
    head = _head(chat, result.model)
    head["object"] = "chat.completion" if chat else "text_completion"
    return {**head, "choices": choices, "usage": _usage(result.prompt_tokens, completion, result.cached_prompt_tokens)}


def _usage(prompt: int, completion: int, cached: int = 0) -> dict[str, Any]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}  # fmt: skip


async def events(
    deltas: AsyncIterator[StreamDelta], n: int, model: str, chat: bool, include_usage: bool
) -> AsyncIterator[str]:
    """Server-sent events of a streamed completion (``data: ...`` lines, then ``data: [DONE]``)."""
    head, started, prompt_tokens, completion_tokens = _head(chat, model), set(), 0, 0
    async for d in deltas:
        index = d.prompt * n + d.sample
        prompt_tokens += d.prompt_tokens
        completion_tokens += d.num_tokens
        if chat:
            delta = {"content": d.text} if index in started else {"role": "assistant", "content": d.text}
            started.add(index)
            choice = {"index": index, "delta": delta, "finish_reason": _finish(d.finish_reason), "logprobs": None}
        else:
            choice = {"index": index, "text": d.text, "finish_reason": _finish(d.finish_reason), "logprobs": None}
        yield _event({**head, "choices": [choice]})
    if include_usage:
        yield _event({**head, "choices": [], "usage": _usage(prompt_tokens, completion_tokens)})
    yield "data: [DONE]\n\n"


def _event(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk)}\n\n"
