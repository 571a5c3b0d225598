"""DPO job, pure parts: config defaults and errors, pair cleaning and the problem-level split, DeepSpeed configs."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pair_data import good_rows, pair_row, write_pair_rows

from sphere_ray.config import load_yaml, parse_config
from sphere_ray.pairs import PAIR_SCHEMA
from sphere_ray.training.config import DEEPSPEED_DIR, DPOJobConfig
from sphere_ray.training.data import TRL_COLUMNS, clean_pairs, load_pair_splits, split_by_problem

ROOT = Path(__file__).resolve().parents[2]


def test_paper_defaults():
    cfg = DPOJobConfig()
    assert (cfg.beta, cfg.learning_rate, cfg.warmup_steps, cfg.num_train_epochs) == (0.8, 1e-6, 0.2, 10.0)
    assert (cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout) == (64, 128, 0.05)
    assert cfg.eval_strategy == cfg.save_strategy == "epoch" and not cfg.disable_dropout


@pytest.mark.parametrize("recipe", ["dpo_smollm2.yaml", "dpo_gpu.yaml"])
def test_committed_recipes_parse(recipe):
    cfg = parse_config(DPOJobConfig, ["--config", str(ROOT / "recipes" / recipe)])
    assert cfg.beta == 0.8 and cfg.lora_r == 64 and cfg.lora_alpha == 128 and cfg.lora_dropout == 0.05
    if recipe == "dpo_gpu.yaml":
        assert cfg.bf16 and cfg.use_gpu and cfg.zero_stage in (2, 3) and cfg.num_train_epochs == 10
        assert cfg.learning_rate == 1e-6 and cfg.warmup_steps == 0.2


def test_cli_overrides_and_scientific_floats():
    cfg = parse_config(DPOJobConfig, ["--learning_rate", "1e-3", "--beta", "0.5", "--lora_target_modules", "[q_proj]"])
    assert cfg.learning_rate == 1e-3 and cfg.beta == 0.5 and cfg.lora_target_modules == ["q_proj"]


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--lora_r", "0"], "lora_r"),
        (["--eval_fraction", "1.0"], "eval_fraction"),
        (["--zero_stage", "1"], "zero_stage"),
        (["--deepspeed", "ds.json"], "deepspeed"),
        (["--deepspeed_config", "ds.json"], "deepspeed_config"),
        (["--lr_scheduler_type", "bogus"], "invalid DPO training argument"),
        (["--eval_strategy", "steps"], "save_strategy"),
        (["--lora_dropout", "1.5"], "lora_dropout"),
        (["--beta", "high"], "beta"),
    ],
)
def test_bad_values_name_the_field(argv, field):
    with pytest.raises(ValueError, match=field):
        parse_config(DPOJobConfig, argv)


def test_unknown_recipe_key_is_refused(tmp_path):
    (tmp_path / "r.yaml").write_text("betta: 0.8\n")
    with pytest.raises(ValueError, match="unknown field"):
        load_yaml(DPOJobConfig, tmp_path / "r.yaml")


def test_cpu_workers_train_in_fp32_and_gpu_workers_keep_bf16():
    cpu = DPOJobConfig(use_gpu=False).training_args("/tmp/x")
    assert cpu.bf16 is False and cpu.use_cpu and cpu.deepspeed is None
    assert DPOJobConfig(zero_stage=3).deepspeed_file() == str(DEEPSPEED_DIR / "zero3.json")


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_configs_pass_deepspeeds_parser(stage):
    from deepspeed.runtime.config import DeepSpeedConfig
    from transformers.integrations.deepspeed import HfTrainerDeepSpeedConfig

    args = DPOJobConfig(zero_stage=stage).training_args("/tmp/x", hardware_checks=False)
    hf = HfTrainerDeepSpeedConfig(str(DEEPSPEED_DIR / f"zero{stage}.json"))
    hf.trainer_config_process(args)  # fills the "auto" values from the training arguments
    ds = DeepSpeedConfig(hf.config)
    assert ds.zero_optimization_stage == stage and ds.train_batch_size == args.per_device_train_batch_size
    assert json.loads((DEEPSPEED_DIR / f"zero{stage}.json").read_text())["zero_optimization"]["stage"] == stage


class _CharTokenizer:
    """Fake tokenizer: one token per character (enough to test the length filter)."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [list(t) for t in texts]}


def _table(rows):
    return pa.Table.from_pylist(rows, schema=PAIR_SCHEMA).select([*TRL_COLUMNS, "problem_id"])


def test_unusable_pairs_are_dropped_with_counts():
    rows = [
        *good_rows(2, 2), pair_row("p-9", 0, chosen="  "), pair_row("p-9", 1, rejected=""),
        pair_row("p-9", 2, chosen="same", rejected=" same "), pair_row("p-9", 3, chosen="x" * 5000),
        pair_row("p-9", 4, prompt=" "),
    ]  # fmt: skip
    kept, dropped = clean_pairs(_table(rows), _CharTokenizer(), max_length=1000)
    assert kept.num_rows == 4 and set(kept.column("problem_id").to_pylist()) == {"p-0", "p-1"}
    assert dropped == {"empty chosen or rejected": 2, "chosen identical to rejected": 1,
                       "longer than max_length=1000 tokens": 1, "empty prompt": 1}  # fmt: skip
    rows = kept.to_pylist()  # the length the batches are grouped by: prompt + the longer completion
    assert [r["length"] for r in rows] == [len(r["prompt"]) + max(len(r["chosen"]), len(r["rejected"])) for r in rows]


def test_length_column_reaches_the_length_grouped_sampler(tmp_path):
    import torch
    from datasets import Dataset
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from sphere_ray.training.worker import dpo_trainer_class

    trainer_class = dpo_trainer_class()
    trainer = trainer_class.__new__(trainer_class)
    trainer._signature_columns, trainer._is_vision_dataset = None, False
    trainer.args = DPOJobConfig(output_dir=str(tmp_path)).training_args(str(tmp_path), hardware_checks=False)
    trainer._set_signature_columns_if_needed()
    assert "length" in trainer._signature_columns and trainer.args.train_sampling_strategy == "group_by_length"
    lengths = Dataset.from_dict({"length": [10 + (i * 37) % 300 for i in range(64)]})["length"]
    grouped = list(LengthGroupedSampler(4, lengths=lengths, generator=torch.Generator().manual_seed(0)))
    shuffled = torch.randperm(64, generator=torch.Generator().manual_seed(0)).tolist()
    assert sorted(grouped) == list(range(64)) and _padding(grouped, lengths) < 0.5 * _padding(shuffled, lengths)


def _padding(order: list[int], lengths: list[int], batch: int = 4) -> int:
    """Pad tokens when ``order`` is cut into batches padded to their longest row."""
    chunks = [[lengths[i] for i in order[k : k + batch]] for k in range(0, len(order), batch)]
    return sum(max(c) * len(c) - sum(c) for c in chunks)


def test_split_holds_out_whole_problems():
    table = _table(good_rows(10, 3))
    train, held = split_by_problem(table, 0.2, seed=1)
    train_ids, eval_ids = set(train.column("problem_id").to_pylist()), set(held.column("problem_id").to_pylist())
    assert not train_ids & eval_ids and len(eval_ids) == 2 and train.num_rows + held.num_rows == 30
    again, _ = split_by_problem(table, 0.2, seed=1)
    assert again.equals(train)  # deterministic
    assert split_by_problem(table, 0.0)[1] is None


def test_eval_split_needs_two_problems():
    with pytest.raises(ValueError, match=">= 2 problems"):
        split_by_problem(_table(good_rows(1, 4)), 0.1)


def test_empty_and_unusable_and_missing_pairs_are_clear_errors(tmp_path):
    write_pair_rows([], tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="holds no pairs"):
        load_pair_splits(str(tmp_path / "empty.parquet"), None, None, 0.0)
    write_pair_rows([pair_row("p-1", 0, chosen="")], tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="none of the 1 pairs"):
        load_pair_splits(str(tmp_path / "bad.parquet"), None, None, 0.0)
    with pytest.raises(ValueError, match="cannot read"):
        load_pair_splits(str(tmp_path / "nope.parquet"), None, None, 0.0)
    pq.write_table(pa.table({"a": [1]}), tmp_path / "other.parquet")
    with pytest.raises(ValueError, match="not a pairs file"):
        load_pair_splits(str(tmp_path / "other.parquet"), None, None, 0.0)


def test_reference_is_precomputed_when_training_sees_a_pair_more_than_once():
    def precompute(train_pairs: int, **over) -> bool:
        cfg = DPOJobConfig(**over)
        return cfg.training_args("/tmp/x", hardware_checks=False, train_rows=train_pairs).precompute_ref_log_probs

    assert precompute(100) and not precompute(100, num_train_epochs=1)  # the paper's 10 epochs vs one
    assert precompute(32, max_steps=16, per_device_train_batch_size=4)  # 64 pair passes over 32 pairs
    assert not precompute(64, max_steps=16, per_device_train_batch_size=4)  # exactly one epoch
    assert not precompute(100, precompute_ref_log_probs=False)  # the recipe's word wins
    assert precompute(10, num_train_epochs=1, precompute_ref_log_probs=True)
    assert not precompute(0)  # the driver's check, before the data is read
    assert not precompute(100, num_workers=2)  # TRL's reference columns would sit in per-process temporary files
    cfg = DPOJobConfig(max_steps=10, per_device_train_batch_size=4, gradient_accumulation_steps=2, num_workers=2)
    assert cfg.passes_over_data(40) == 4.0  # 10 steps x 4 x 2 accumulated x 2 workers / 40 pairs


def test_length_sorted_reference_pass_gives_each_pair_trls_log_probs(tiny_policy_path, tmp_path):
    """The job's trainer precomputes the reference over length-sorted pairs: each pair keeps its own log-probs."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    from sphere_ray.training.worker import dpo_trainer_class

    tokenizer = AutoTokenizer.from_pretrained(tiny_policy_path)
    rows = [pair_row(f"p-{i}", 0, chosen="Yes. " * (1 + (i * 7) % 11)) for i in range(8)]
    table, _ = clean_pairs(_table(rows), tokenizer, max_length=256)
    assert table.column("length").to_pylist() != sorted(table.column("length").to_pylist())  # the sort reorders
    cfg = DPOJobConfig(output_dir=str(tmp_path), per_device_train_batch_size=2, eval_fraction=0.0)
    args = cfg.training_args(str(tmp_path), hardware_checks=False, train_rows=table.num_rows)
    assert args.precompute_ref_log_probs  # ten epochs

    def reference(trainer_class: type) -> dict[str, tuple[float, float]]:
        trainer = trainer_class(
            model=AutoModelForCausalLM.from_pretrained(tiny_policy_path), args=args, processing_class=tokenizer,
            train_dataset=Dataset(table), peft_config=LoraConfig(r=4, lora_alpha=8, task_type="CAUSAL_LM"),
        )  # fmt: skip
        data = trainer.train_dataset
        return {r["prompt"]: (r["ref_chosen_logps"], r["ref_rejected_logps"]) for r in data}

    sorted_pass, trl_pass = reference(dpo_trainer_class()), reference(DPOTrainer)
    assert sorted_pass.keys() == trl_pass.keys() and len(sorted_pass) == 8
    for prompt, logps in trl_pass.items():  # one pair per prompt
        assert sorted_pass[prompt] == pytest.approx(logps, abs=1e-4)


@pytest.mark.parametrize(
    "stage, argv, field",
    [
        ("train", ["--lora_r", "0"], "lora_r"),
        ("run", ["--config", "recipes/dual_phase_smollm2.yaml", "--phase1", "{max_turnz: 2}"], "max_turnz"),
    ],
)
def test_a_training_config_mistake_is_one_line_and_exit_2(capsys, stage, argv, field):
    """Like the unit tier's CLI test, for the configs that hold TRL's (they import TRL)."""
    from sphere_ray.cli import main

    assert main([stage, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sphere-ray: error:") and field in err and "Traceback" not in err
