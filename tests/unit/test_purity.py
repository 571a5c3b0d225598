"""Purity: the search core and the dialogue rules load neither Ray, vLLM nor torch; the unit tier loads no
model framework (checked in a fresh interpreter, so what other tests imported does not count)."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PURE = [
    "sphere_ray.search", "sphere_ray.grading", "sphere_ray.dialogue.filters", "sphere_ray.dialogue.allocation",
    "sphere_ray.dialogue.rejection",
]  # fmt: skip


def fresh_python(code: str, *args: str) -> str:
    """What ``code`` prints when run in a new interpreter with ``args``."""
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_search_core_imports_no_ray_vllm_torch():
    code = f"import sys, {', '.join(PURE)}; print(sorted({{'ray', 'vllm', 'torch'}} & set(sys.modules)))"
    assert fresh_python(code) == "[]"


def test_unit_modules_import_no_model_framework():
    modules = sorted(p.stem for p in HERE.glob("test_*.py"))
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "for m in sys.argv[3:]: __import__(m)\n"
        "from conftest import heavy_loaded; print(heavy_loaded())"
    )
    out = fresh_python(code, str(HERE), str(HERE.parent), *modules)
    assert out == "[]", out
