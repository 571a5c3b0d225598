"""The unit tier: pure logic. It starts no Ray and loads no model framework (torch, transformers, TRL, vLLM).

``make test-fast`` runs this folder alone; when it does, the session fails if any test broke that rule.
"""

import sys

import pytest

HEAVY = ("torch", "transformers", "trl", "vllm", "peft", "deepspeed")


def heavy_loaded() -> list[str]:
    """Names of the model frameworks loaded so far, plus ``ray (started)`` if a Ray runtime was initialised."""
    loaded = [name for name in HEAVY if name in sys.modules]
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        loaded.append("ray (started)")
    return loaded


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail a unit-only session that loaded a model framework or started Ray."""
    items = getattr(session, "items", [])
    if not items or any(item.path.parent.name != "unit" for item in items):
        return  # a run of several tiers: the other tiers load them by design
    loaded = heavy_loaded()
    if loaded:
        sys.stderr.write(f"\nFAILED: the unit tier is not pure: it loaded {', '.join(loaded)}\n")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
