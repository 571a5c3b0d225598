"""The pairs schema: write, read back, load with `datasets`, pass TRL's format checks."""

import pyarrow as pa
import pytest
from golden import stage1_result

from sphere_ray.pairs import PAIR_SCHEMA, pairs_to_table, read_pairs, write_pairs


def test_round_trip_and_metadata(tmp_path):
    result, _, _ = stage1_result()
    table = pairs_to_table(result.pairs, "abc123", {"config": {"max_depth": 3}})
    path = write_pairs(table, tmp_path / "pairs" / "part-0.parquet")
    back = read_pairs(path)
    assert back.schema.equals(PAIR_SCHEMA, check_metadata=False)
    assert back.to_pylist() == table.to_pylist()
    assert back.num_rows == 4 and set(back.column("config_hash").to_pylist()) == {"abc123"}
    assert table.schema.metadata[b"sphere_ray.config"] == b'{"max_depth": 3}'
    assert not list(tmp_path.glob("pairs/.*"))  # no temporary file left visible
    row = next(r for r in back.to_pylist() if r["level"] == "trajectory")
    assert row["depth"] is None and row["stage"] == 1 and row["chosen_correct"] is True


def test_loads_with_datasets_and_trl(tmp_path):
    from datasets import load_dataset
    from trl.data_utils import is_conversational, maybe_apply_chat_template

    result, _, _ = stage1_result()
    write_pairs(pairs_to_table(result.pairs, "h"), tmp_path / "pairs.parquet")
    ds = load_dataset("parquet", data_files=str(tmp_path / "pairs.parquet"), split="train")
    assert {"prompt", "chosen", "rejected"} <= set(ds.column_names) and len(ds) == 4
    example = ds[0]
    assert not is_conversational(example)  # TRL's standard (plain text) preference format
    assert maybe_apply_chat_template(example, processing_class=None) == example


def test_trl_dpo_trainer_reads_pairs_without_column_mapping(tmp_path, tiny_policy_path):
    from datasets import load_dataset
    from dpo_check import dpo_one_step

    result, _, _ = stage1_result()
    write_pairs(pairs_to_table(result.pairs, "h"), tmp_path / "pairs.parquet")
    ds = load_dataset("parquet", data_files=str(tmp_path / "pairs.parquet"), split="train")
    loss = dpo_one_step(ds, tiny_policy_path, str(tmp_path / "dpo"))
    assert loss == pytest.approx(0.6931, abs=1e-3)  # log(2): policy == reference at the first step


def test_wrong_schema_is_refused(tmp_path):
    with pytest.raises(ValueError, match="pairs schema"):
        write_pairs(pa.table({"prompt": ["p"]}), tmp_path / "x.parquet")
    pa.parquet.write_table(pa.table({"prompt": ["p"]}), tmp_path / "y.parquet")
    with pytest.raises(ValueError, match="columns missing"):
        read_pairs(tmp_path / "y.parquet")


def test_empty_pairs_table_is_valid(tmp_path):
    back = read_pairs(write_pairs(pairs_to_table([], "h"), tmp_path / "e.parquet"))
    assert back.num_rows == 0 and back.schema.equals(PAIR_SCHEMA, check_metadata=False)
