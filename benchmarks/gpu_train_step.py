"""GPU calibration of the training recipes: one H200, bf16, LoRA r64/alpha128, the GPU recipes' shapes.

What the GPU recipes (``recipes/sft_gpu.yaml``, ``recipes/dpo_gpu.yaml``, ``recipes/dual_phase_gpu.yaml``) cost
per optimizer step on one GPU, so a user can size a run (samples x epochs / throughput) before renting a
cluster. The device machines have no model hub, so each model is its published architecture (the Qwen2.5
config numbers below) with random bf16 weights: throughput and memory depend on the shapes, not the values.

Steps measured, each after ``--warmup`` untimed steps, CUDA-synchronised, ``--steps`` timed:

- ``sft``: one packed row of ``--sft-length`` tokens (sft_gpu.yaml: batch 1 x 8192, gradient checkpointing),
  the loss on every token; forward + backward + AdamW step on the LoRA parameters.
- ``dpo``: ``--dpo-batch`` pairs x ``--dpo-length`` tokens per side (dpo_gpu.yaml: batch 2 x 2048), chosen and
  rejected in one concatenated batch; the reference log-probs from the same model with the adapter disabled
  (PEFT's reference-free copy, as TRL does for a PEFT model), then the policy forward + backward; sigmoid loss,
  beta 0.8.

Needs torch (CUDA), transformers and peft only (no ray, vllm or trl on the device image). Writes
``$OUT/gpu_train_step.json`` (or ``--out``); ``benchmarks/results/gpu_train_step.{md,json}`` are the committed copy.

    python benchmarks/gpu_train_step.py --out /tmp/gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
from torch.nn.functional import logsigmoid

# Published Qwen2.5 architectures (config.json of each model on the Hub), the policy of the GPU recipes and
# the small policy of SPHERE's stage 3.
MODELS = {
    "Qwen2.5-Math-7B-Instruct": dict(
        hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, vocab_size=152064, max_position_embeddings=16384, rope_theta=10000.0,
        tie_word_embeddings=False,
    ),
    "Qwen2.5-Math-1.5B-Instruct": dict(
        hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
        num_key_value_heads=2, vocab_size=151936, max_position_embeddings=16384, rope_theta=10000.0,
        tie_word_embeddings=True,
    ),
}  # fmt: skip
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build(name: str):
    """The model with random bf16 weights on the GPU, LoRA r64/alpha128 on every linear, checkpointing on."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(**MODELS[name], torch_dtype="bfloat16")
    config._attn_implementation = "sdpa"
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, torch_dtype=torch.bfloat16)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()
    lora = LoraConfig(r=64, lora_alpha=128, lora_dropout=0.05, target_modules=LORA_TARGETS, task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def token_logps(model, ids: torch.Tensor) -> torch.Tensor:
    """Sum over positions of log p(token | prefix): shape (batch,)."""
    logits = model(input_ids=ids).logits[:, :-1].float()
    return torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None]).squeeze(2).sum(1)


def sft_step(model, ids: torch.Tensor) -> torch.Tensor:
    """Causal LM loss on every token of the packed row."""
    return model(input_ids=ids, labels=ids).loss


def dpo_step(model, ids: torch.Tensor, beta: float = 0.8) -> torch.Tensor:
    """Sigmoid DPO loss; rows [0, n) chosen, [n, 2n) rejected; the reference = the adapter disabled."""
    n = ids.shape[0] // 2
    with torch.no_grad(), model.disable_adapter():
        ref = token_logps(model, ids)
    pol = token_logps(model, ids)
    margin = (pol[:n] - ref[:n]) - (pol[n:] - ref[n:])
    return -logsigmoid(beta * margin).mean()


def measure(model, kind: str, batch: int, length: int, steps: int, warmup: int) -> dict:
    """Tokens/s, seconds per step and peak GPU memory of ``steps`` optimizer steps of one kind."""
    vocab = model.config.vocab_size
    rows = batch * 2 if kind == "dpo" else batch
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    step = dpo_step if kind == "dpo" else sft_step
    torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        ids = torch.randint(0, vocab, (rows, length), device="cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = step(model, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    per_step = sorted(times)[len(times) // 2]
    return {
        "kind": kind,
        "rows": rows,
        "length": length,
        "tokens_per_step": rows * length,
        "median_s_per_step": round(per_step, 4),
        "tokens_per_s": round(rows * length / per_step),
        "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
        "steps_timed": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sft-length", type=int, default=8192, help="tokens per packed SFT row")
    parser.add_argument("--dpo-batch", type=int, default=2, help="pairs per DPO step")
    parser.add_argument("--dpo-length", type=int, default=2048, help="tokens per side of a pair")
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--out", default=os.path.join(os.environ.get("OUT", "."), "gpu_train_step.json"))
    args = parser.parse_args()
    import peft
    import transformers

    result = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "runs": [],
    }
    for name in args.models:
        t0 = time.perf_counter()
        model = build(name)
        trainable, total = model.get_nb_trainable_parameters()
        build_s = time.perf_counter() - t0
        for kind, batch, length in (("sft", 1, args.sft_length), ("dpo", args.dpo_batch, args.dpo_length)):
            run = measure(model, kind, batch, length, args.steps, args.warmup)
            run.update(model=name, trainable_params=trainable, total_params=total, build_s=round(build_s, 1))
            print(json.dumps(run), flush=True)
            result["runs"].append(run)
        del model
        torch.cuda.empty_cache()
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
