"""Loading transformers causal LMs the way every backend here needs them."""

from __future__ import annotations

from typing import Any

__all__ = ["load_causal_lm"]


def load_causal_lm(path: str, dtype: str = "float32", device: str = "cpu", trust_remote_code: bool = False) -> Any:
    """Load a causal LM and its tokenizer (left padding, pad token set) in eval mode: ``(model, tokenizer)``."""
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
