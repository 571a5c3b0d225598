"""Settings shared by the benchmark scripts: the policy's engine exactly as ``deployments/policy.yaml`` runs it."""

from pathlib import Path

DEPLOYMENTS = Path(__file__).resolve().parents[1] / "deployments"


def app_settings(yaml_name: str) -> tuple[dict, dict]:
    """(runtime env vars, ``engine_kwargs``) of the one app in ``deployments/<yaml_name>``.

    ``engine_kwargs`` is the app's ``args.engine_kwargs`` (generation apps) or ``args.options.engine_kwargs``
    (PRM apps), so a direct engine in a benchmark is the engine the deployment serves.
    """
    from sphere_ray.serving.launch import load_serve_config

    (app,) = load_serve_config([DEPLOYMENTS / yaml_name])["applications"]
    args = app.get("args", {})
    kwargs = args.get("engine_kwargs") or args.get("options", {}).get("engine_kwargs") or {}
    return dict(app.get("runtime_env", {}).get("env_vars", {})), dict(kwargs)


VLLM_ENV, ENGINE_KWARGS = app_settings("policy.yaml")
KV_ENV = "VLLM_CPU_KVCACHE_SPACE"  # vLLM-CPU's KV cache size in GiB (the generation benchmark's --kv-gib)


def write_results(name: str, title: str, meta: str, result: dict, extra: dict | None = None) -> str:
    """Write ``results/<name>.md`` (a metric table under ``title`` and ``meta``) and ``results/<name>.json``.

    ``extra`` (long series such as timelines) goes to the JSON only.
    """
    from sphere_ray.files import write_json, write_text

    out = Path(__file__).resolve().parent / "results"
    rows = "\n".join(f"| {k} | {v} |" for k, v in result.items())
    md = f"# {title}\n\n{meta}\n\n| metric | value |\n|---|---|\n{rows}\n"
    write_text(out / f"{name}.md", md)
    write_json(out / f"{name}.json", {"meta": meta, **result, **(extra or {})})
    return md
