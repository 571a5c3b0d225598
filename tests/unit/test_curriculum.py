"""The easy-math curriculum: the bundled files are the generator's output, the splits share no problem, the
answers are right."""

import json
import re
from importlib import resources

from sphere_ray.data.curriculum import KINDS, generate, split_of
from sphere_ray.grading import is_correct
from sphere_ray.problems import load_problems


def _bundled(split):
    text = resources.files("sphere_ray.data").joinpath(f"easy_{split}.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def test_bundled_files_are_the_generators_output():
    generated = generate()
    assert _bundled("train") == generated["train"] and _bundled("test") == generated["test"]


def test_splits_are_disjoint_by_math_and_by_text():
    train, test = _bundled("train"), _bundled("test")
    numbers = lambda r: (r["subject"], tuple(int(x) for x in re.findall(r"\d+", r["problem"])))  # noqa: E731
    assert not {numbers(r) for r in train} & {numbers(r) for r in test}
    assert not {r["problem"] for r in train} & {r["problem"] for r in test}
    assert all(split_of(*numbers(r)) == "train" for r in train) and all(split_of(*numbers(r)) == "test" for r in test)
    assert len({r["id"] for r in train + test}) == len(train) + len(test)


def test_every_kind_in_both_splits_interleaved_and_loadable():
    for split, per_kind in (("train", 40), ("test", 20)):
        loaded = load_problems(f"easy_{split}")
        assert not loaded.rejects and len(loaded.problems) == per_kind * len(KINDS)
        assert [p.subject for p in loaded.problems[: len(KINDS)]] == list(KINDS)  # limit: 7 takes one of each
        assert {p.subject for p in loaded.problems} == set(KINDS)


def test_answers_and_reference_solutions_are_right():
    for row in _bundled("train") + _bundled("test"):
        a, b = (int(x) for x in re.findall(r"\d+", row["problem"])[:2])
        want = {"add_one_digit": a + b, "add_small": a + b, "add_two_digit": a + b, "word_add": a + b,
                "sub_two_digit": a - b, "word_sub": a - b, "mul_sentence": a * b}[row["subject"]]  # fmt: skip
        assert row["answer"] == str(want) and want > 0
        assert is_correct(row["solution"], row["answer"])


def test_generation_is_seeded():
    assert generate(seed=1, train=5, test=3) == generate(seed=1, train=5, test=3)
    assert generate(seed=1, train=5, test=3) != generate(seed=2, train=5, test=3)
