"""Settings shared by the benchmark scripts (the same as deployments/policy.yaml on this CPU)."""

VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
            "OMP_NUM_THREADS": "2", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
ENGINE_KWARGS = {"dtype": "float32", "enforce_eager": True, "max_model_len": 2048, "enable_prefix_caching": True,
                 "enable_chunked_prefill": False, "max_num_batched_tokens": 2048}  # fmt: skip


def write_results(name: str, title: str, meta: str, result: dict, extra: dict | None = None) -> str:
    """Write ``results/<name>.md`` (a metric table under ``title`` and ``meta``) and ``results/<name>.json``.

    ``extra`` (long series such as timelines) goes to the JSON only.
    """
    from pathlib import Path

    from sphere_ray.files import write_json, write_text

    out = Path(__file__).resolve().parent / "results"
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    md = f"# {title}\n\n{meta}\n\n| metric | value |\n|---|---|\n{rows}\n"
    write_text(out / f"{name}.md", md)
    write_json(out / f"{name}.json", {"meta": meta, **result, **(extra or {})})
    return md
