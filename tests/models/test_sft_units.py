"""SFT job without Ray: config, sample cleaning and split, and the loss mask of the job's TRL SFTTrainer on a tiny
REAL Qwen2 (SmolLM2's ChatML tokenizer): the completion and its end-of-turn token are trained, nothing else."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sft_rows import good_sft_rows, sft_row, write_sft_rows

from sphere_ray.config import parse_config
from sphere_ray.training.config import DPOJobConfig, SFTJobConfig
from sphere_ray.training.job import registered_checkpoint_step
from sphere_ray.training.samples import clean_samples, load_sft_splits, sample_format

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_share_the_training_options_and_differ_where_sft_does():
    sft, dpo = SFTJobConfig(), DPOJobConfig()
    assert (sft.lora_r, sft.lora_alpha, sft.eval_fraction) == (dpo.lora_r, dpo.lora_alpha, dpo.eval_fraction)
    assert sft.packing and sft.packing_strategy == "bfd" and sft.completion_only_loss is None
    assert (sft.run_name, sft.output_dir, sft.learning_rate) == ("sft", "outputs/sft", 1e-4)
    args = sft.training_args("/tmp/x", hardware_checks=False)
    assert type(args).__name__ == "SFTConfig" and args.packing and args.max_length == 4096 and args.use_cpu


@pytest.mark.parametrize("recipe", ["sft_smollm2.yaml", "sft_gpu.yaml"])
def test_committed_recipes_parse(recipe):
    cfg = parse_config(SFTJobConfig, ["--config", str(ROOT / "recipes" / recipe)])
    assert cfg.packing and cfg.lora_r == 64 and cfg.data.endswith("/sft")
    if recipe == "sft_gpu.yaml":
        assert cfg.bf16 and cfg.use_gpu and cfg.zero_stage in (2, 3) and cfg.max_length == 8192


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["--max_length", "0"], "max_length"),
        (["--max_length", "null"], "max_length"),
        (["--packing_strategy", "wrapped"], "packing_strategy"),
        (["--lora_r", "0"], "lora_r"),
        (["--zero_stage", "1"], "zero_stage"),
        (["--lr_scheduler_type", "bogus"], "invalid SFT training argument"),
        (["--eval_strategy", "steps"], "save_strategy"),
    ],
)
def test_bad_values_name_the_field(argv, field):
    with pytest.raises(ValueError, match=field):
        parse_config(SFTJobConfig, argv)


def _table(rows: list[dict]) -> pa.Table:
    from sphere_ray.dialogue.worker import SFT_SCHEMA

    return pa.Table.from_pylist(rows, schema=SFT_SCHEMA).select(["prompt", "completion", "problem_id"])


def test_unusable_samples_are_dropped_with_counts(tiny_policy_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_policy_path)
    rows = [*good_sft_rows(2, 2), sft_row("p-9", 0, completion=" "), sft_row("p-9", 1, prompt=""),
            sft_row("p-9", 2, completion="x " * 400)]  # fmt: skip
    kept, dropped = clean_samples(_table(rows), tok, max_length=256)
    assert kept.num_rows == 4 and set(kept.column("problem_id").to_pylist()) == {"p-0", "p-1"}
    assert dropped == {"empty completion": 1, "empty prompt": 1, "longer than max_length=256 tokens": 1}
    # the length is TRL's: the chat template applied, so a sample just under the limit as plain text is still dropped
    n = len(tok.apply_chat_template(rows[0]["prompt"] + rows[0]["completion"], tokenize=True, return_dict=True)
            ["input_ids"])  # fmt: skip
    assert clean_samples(_table(rows[:1]), tok, max_length=n)[0].num_rows == 1
    assert clean_samples(_table(rows[:1]), tok, max_length=n - 1)[1] == {f"longer than max_length={n - 1} tokens": 1}


def test_messages_and_plain_text_formats():
    messages = pa.table({
        "messages": [[{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "2"}],
                     [{"role": "user", "content": "1+1?"}], [{"role": "user"}]],
        "problem_id": ["a", "b", "c"],
    })  # fmt: skip
    kept, dropped = clean_samples(messages, None, None)
    assert sample_format(messages) == "messages" and kept.num_rows == 1
    assert dropped == {"no assistant turn": 1, "malformed messages": 1}
    text = pa.table({"prompt": ["1+1?", "2+2?"], "completion": [" 2", ""], "problem_id": ["a", "b"]})
    assert sample_format(text) == "prompt-completion"
    assert clean_samples(text, None, None)[1] == {"empty completion": 1}
    with pytest.raises(ValueError, match="prompt \\+ completion or messages"):
        sample_format(pa.table({"text": ["x"]}))


def test_load_splits_by_problem_and_errors(tmp_path):
    path = write_sft_rows([*good_sft_rows(6, 3), sft_row("p-9", 0, completion="")], tmp_path / "sft" / "a.parquet")
    splits = load_sft_splits(str(path.parent), None, None, 0.34)
    assert splits.train.column_names == ["prompt", "completion"]  # TRL's columns only: provenance stays behind
    summary = splits.summary()
    assert summary["samples_read"] == 19 and summary["dropped"] == {"empty completion": 1}
    assert summary["train_samples"] + summary["eval_samples"] == 18 and summary["eval_samples"] % 3 == 0
    pq.write_table(pa.table({"prompt": ["1+1?", "2+2?"], "completion": ["2", "4"]}), tmp_path / "plain.parquet")
    plain = load_sft_splits(str(tmp_path / "plain.parquet"), None, None, 0.5)  # no problem_id: a row is a problem
    assert plain.train.num_rows == plain.eval.num_rows == 1
    write_sft_rows([], tmp_path / "empty.parquet")
    with pytest.raises(ValueError, match="holds no samples"):
        load_sft_splits(str(tmp_path / "empty.parquet"), None, None, 0.0)
    write_sft_rows([sft_row("p-1", 0, completion="")], tmp_path / "bad.parquet")
    with pytest.raises(ValueError, match="none of the 1 samples"):
        load_sft_splits(str(tmp_path / "bad.parquet"), None, None, 0.0)
    with pytest.raises(ValueError, match="cannot read"):
        load_sft_splits(str(tmp_path / "nope.parquet"), None, None, 0.0)


@pytest.mark.parametrize("packing", [False, True])
def test_loss_covers_the_completion_and_its_end_of_turn_token_only(tiny_policy_path, tmp_path, packing):
    from transformers import AutoTokenizer

    from sphere_ray.training.worker import build_trainer

    tok = AutoTokenizer.from_pretrained(tiny_policy_path)
    rows = good_sft_rows(3, 2)
    cfg = SFTJobConfig(model=tiny_policy_path, output_dir=str(tmp_path), packing=packing, max_length=512,
                       eval_fraction=0.0, per_device_train_batch_size=2)  # fmt: skip
    trainer = build_trainer(cfg, _table(rows).select(["prompt", "completion"]), None, str(tmp_path))
    completions = sorted(r["completion"][0]["content"] + tok.eos_token for r in rows)
    trained, rows_out = [], list(trainer.train_dataset)
    assert len(rows_out) < len(rows) if packing else len(rows_out) == len(rows)  # bfd packs several samples per row
    for example in rows_out:
        ids, labels = example["input_ids"], example["labels"]
        for start, end in _segments(example.get("seq_lengths") or [len(ids)]):
            span = [i for i in range(start, end) if labels[i] != -100]
            assert span == list(range(span[0], span[-1] + 1))  # one contiguous span per sample ...
            assert labels[span[-1]] == tok.eos_token_id  # ... ending on the end-of-turn token, which is trained
            assert all(labels[i] == ids[i] for i in span)
            assert "user" in tok.decode(ids[start : span[0]])  # the prompt (chat template, user turn) is not trained
            trained.append(tok.decode([ids[i] for i in span]))
    assert sorted(trained) == completions  # exactly the completions, each once, nothing after <|im_end|>
    batch = next(iter(trainer.get_train_dataloader()))
    assert ("position_ids" in batch and "attention_mask" not in batch) if packing else "attention_mask" in batch


def _segments(lengths: list[int]) -> list[tuple[int, int]]:
    starts = [sum(lengths[:k]) for k in range(len(lengths))]
    return [(s, s + n) for s, n in zip(starts, lengths, strict=True)]


def test_registered_checkpoint_step_reads_the_controller_snapshot(tmp_path):
    """None until Ray Train's controller has registered a checkpoint (missing, half-written or empty snapshot)."""
    snapshot = tmp_path / "checkpoint_manager_snapshot.json"
    assert registered_checkpoint_step(tmp_path) is None
    snapshot.write_text('{"checkpoint_results": [')
    assert registered_checkpoint_step(tmp_path) is None
    snapshot.write_text(json.dumps({"checkpoint_results": [], "latest_checkpoint_result": None}))
    assert registered_checkpoint_step(tmp_path) is None
    latest = {"checkpoint_dir_name": "checkpoint_x", "metrics": {"loss": 1.0, "step": 4}}
    snapshot.write_text(json.dumps({"checkpoint_results": [latest], "latest_checkpoint_result": latest}))
    assert registered_checkpoint_step(tmp_path) == 4
