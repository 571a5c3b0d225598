"""The unit tier stays pure: importing every unit test module loads no model framework."""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_unit_modules_import_no_model_framework():
    modules = sorted(p.stem for p in HERE.glob("test_*.py"))
    code = (
        "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
        "for m in sys.argv[3:]: __import__(m)\n"
        "from conftest import heavy_loaded; print(heavy_loaded())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(HERE), str(HERE.parent), *modules], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
