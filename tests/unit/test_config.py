"""Job config: YAML recipe + CLI overrides, with errors naming the field."""

import pytest

from sphere_ray.config import config_hash, parse_config
from sphere_ray.generation.config import GenerateJobConfig

RECIPE = "recipes/search_smollm2.yaml"


def test_recipe_loads_and_cli_overrides():
    cfg = parse_config(GenerateJobConfig, ["--config", RECIPE, "--max_depth", "2", "--limit", "null", "--seed", "7"])
    assert cfg.max_depth == 2 and cfg.limit is None and cfg.seed == 7
    assert cfg.num_candidates == 5 and cfg.temperature == 0.8  # from the recipe
    assert cfg.sphere_params().search.max_depth == 2


def test_string_fields_keep_what_was_typed():
    cfg = parse_config(GenerateJobConfig, ["--output_dir", "007", "--temperature", "1"])
    assert cfg.output_dir == "007" and cfg.temperature == 1.0


@pytest.mark.parametrize(
    "argv, field",
    [
        (["--num_candidates", "1"], "num_candidates"),
        (["--max_depth", "0"], "max_depth"),
        (["--limit", "0"], "limit"),
        (["--dtype", "int8"], "dtype"),
        (["--models", "remote"], "models"),
        (["--temperature", "hot"], "temperature"),
        (["--max_step_tokens", "1.5"], "max_step_tokens"),
        (["--solve_template", "no placeholder {x}"], "solve_template"),
    ],
)
def test_bad_values_name_the_field(argv, field):
    with pytest.raises(ValueError, match=field):
        parse_config(GenerateJobConfig, argv)


def test_unknown_yaml_key_is_rejected(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("num_candidate: 5\n")
    with pytest.raises(ValueError, match=r"unknown field.*num_candidate"):
        parse_config(GenerateJobConfig, ["--config", str(path)])


def test_inprocess_mode_deploys_nothing():
    cfg = parse_config(GenerateJobConfig, ["--config", RECIPE])
    assert cfg.models == "inprocess" and not cfg.start_serve and cfg.inprocess_models()["prm"] == cfg.prm_model
    assert GenerateJobConfig().inprocess_models() is None and GenerateJobConfig().start_serve


def test_config_hash_ignores_paths_but_not_search_knobs():
    a = GenerateJobConfig()
    assert config_hash(a) == config_hash(GenerateJobConfig(output_dir="elsewhere", log_level="DEBUG"))
    assert config_hash(a) != config_hash(GenerateJobConfig(max_depth=3))


def test_help_lists_every_field(capsys):
    with pytest.raises(SystemExit):
        parse_config(GenerateJobConfig, ["--help"])
    out = capsys.readouterr().out
    assert "--num_candidates" in out and "E: candidate steps per expansion" in out


@pytest.mark.parametrize(
    "stage, argv, field",
    [
        ("generate", ["--max_depth", "0"], "max_depth"),
        ("sft-data", ["--phase", "3"], "phase"),
        ("evaluate", ["--config", "recipes/no_such.yaml"], "no_such.yaml"),
        ("run", ["--method", "grpo"], "method"),
        ("cluster", ["up", "--workers", "-1"], "workers"),
    ],
)
def test_a_config_mistake_is_one_line_and_exit_2(capsys, stage, argv, field):
    from sphere_ray.cli import main

    assert main([stage, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sphere-ray: error:") and field in err and "Traceback" not in err
    with pytest.raises(ValueError, match=field):  # --debug: the exception itself
        main([stage, *argv, "--debug"])


def test_a_recipe_extends_another(tmp_path):
    """``extends``: the base recipe's fields, this recipe's over them, sections merged key by key."""
    import dataclasses as dc

    from sphere_ray.config import load_yaml, option, section

    @dc.dataclass
    class Job:
        rounds: int = option(1, "rounds")
        name: str = option("x", "name")
        generate: dict = section("a section")

    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "base.yaml").write_text("rounds: 1\nname: base\ngenerate: {limit: 8, temperature: 0.8}\n")
    (tmp_path / "child.yaml").write_text("extends: base/base.yaml\nrounds: 2\ngenerate: {temperature: 0.3}\n")
    assert load_yaml(Job, tmp_path / "child.yaml") == {"rounds": 2, "name": "base",
                                                        "generate": {"limit": 8, "temperature": 0.3}}  # fmt: skip
    (tmp_path / "bad.yaml").write_text("extends: base/base.yaml\nnope: 1\n")
    with pytest.raises(ValueError, match="unknown field"):
        load_yaml(Job, tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("extends: loop.yaml\n")
    with pytest.raises(ValueError, match="extends it back"):
        load_yaml(Job, tmp_path / "loop.yaml")
    (tmp_path / "missing.yaml").write_text("extends: nowhere.yaml\n")
    with pytest.raises(ValueError, match="cannot read"):
        load_yaml(Job, tmp_path / "missing.yaml")
