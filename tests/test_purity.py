"""The search core stays pure: importing it loads neither Ray, vLLM nor torch."""

import subprocess
import sys


def test_search_core_imports_no_ray_vllm_torch():
    code = "import sys, sphere_ray.search, sphere_ray.grading; print(sorted({'ray','vllm','torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
