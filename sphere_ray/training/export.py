"""Exporting a trained adapter: copy it out of a checkpoint, merge it into the base model."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

__all__ = ["ADAPTER_FILES", "export_adapter", "merge_adapter"]

log = logging.getLogger(__name__)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "README.md")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja",
                   "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json")  # fmt: skip


def export_adapter(checkpoint: Any, target: str | Path) -> Path:
    """Copy the adapter and tokenizer files of a Ray Train checkpoint (HF folder ``checkpoint/``) to ``target``.

    Raises:
        RuntimeError: the checkpoint holds no adapter.
    """
    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with checkpoint.as_directory() as d:
        source = Path(d) / "checkpoint"
        if not (source / "adapter_config.json").exists():
            raise RuntimeError(f"checkpoint {checkpoint.path} holds no LoRA adapter")
        for name in (*ADAPTER_FILES, *TOKENIZER_FILES):
            if (source / name).exists():
                shutil.copy2(source / name, tmp / name)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log.info("adapter written to %s", target)
    return target


def merge_adapter(base: str | Path, adapter: str | Path, target: str | Path, dtype: str = "float32") -> Path:
    """Write ``base`` + LoRA ``adapter`` merged into plain weights (and the tokenizer) to ``target``."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = Path(target)
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=getattr(torch, dtype))
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(str(adapter) if (Path(adapter) / "tokenizer_config.json").exists() else str(base)
                                  ).save_pretrained(tmp)  # fmt: skip
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    log.info("merged model written to %s", target)
    return target
