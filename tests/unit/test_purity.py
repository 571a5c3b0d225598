"""The search core and the dialogue rules stay pure: importing them loads neither Ray, vLLM nor torch."""

import subprocess
import sys

PURE = [
    "sphere_ray.search", "sphere_ray.grading", "sphere_ray.dialogue.filters", "sphere_ray.dialogue.allocation",
    "sphere_ray.dialogue.rejection",
]  # fmt: skip


def test_search_core_imports_no_ray_vllm_torch():
    code = f"import sys, {', '.join(PURE)}; print(sorted({{'ray', 'vllm', 'torch'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
