"""Grader accuracy on real grading cases built from the benchmark data (needs ``../shared/data`` or --data).

Positive cases (must grade equal):
* MATH-500: the reference solution's extracted final answer vs the dataset answer (500);
* GSM8K test: ``#### X`` appended to the reference solution vs the answer (1319);
* OlympiadBench: the answer written as ``$...$``, inside ``\\boxed{}``, and without ``name =`` (581 × 3);
* AIME24/AMC23: ``The answer is X.`` vs the answer (70).
Negative cases (must grade unequal): each answer against the answer of the next problem in the same
file when the two differ as strings (a different real answer of the same style).

Results: ``benchmarks/results/grading.{md,json}``.

    python benchmarks/grading.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sphere_ray.grading import extract_answer, is_equivalent

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"


def rows(data: Path, name: str) -> list[dict]:
    return [json.loads(line) for line in (data / f"{name}.jsonl").read_text().splitlines() if line.strip()]


def positives(data: Path) -> dict[str, list[tuple[str, str]]]:
    cases: dict[str, list[tuple[str, str]]] = {}
    cases["math500 solution"] = [(extract_answer(r["solution"]) or "", r["answer"]) for r in rows(data, "math500")]
    cases["gsm8k solution"] = [
        (extract_answer(f"{r['solution']}\n#### {r['answer']}") or "", r["answer"]) for r in rows(data, "gsm8k_test")
    ]
    olympiad = rows(data, "olympiadbench")
    cases["olympiad $..$"] = [(f"${r['answer']}$", r["answer"]) for r in olympiad]
    cases["olympiad boxed"] = [(f"\\boxed{{{r['answer']}}}", r["answer"]) for r in olympiad]
    cases["olympiad rhs"] = [(r["answer"].split("=", 1)[1], r["answer"]) for r in olympiad
                             if r["answer"].count("=") == 1 and "," not in r["answer"]]  # fmt: skip
    cases["aime/amc prose"] = [(extract_answer(f"The answer is {r['answer']}.") or "", r["answer"])
                               for name in ("aime24", "amc23") for r in rows(data, name)]  # fmt: skip
    return cases


def negatives(data: Path) -> dict[str, list[tuple[str, str]]]:
    cases = {}
    for name in ("math500", "gsm8k_test", "olympiadbench", "aime24", "amc23"):
        answers = [r["answer"] for r in rows(data, name)]
        pairs = [(a, b) for a, b in zip(answers, answers[1:] + answers[:1], strict=True) if a.strip() != b.strip()]
        cases[f"{name} vs next"] = pairs
    return cases


def measure(cases: dict[str, list[tuple[str, str]]], expected: bool) -> list[dict]:
    out = []
    for name, items in cases.items():
        start = time.perf_counter()
        wrong = [(p, r) for p, r in items if is_equivalent(p, r) is not expected]
        n = max(len(items), 1)
        ms = 1000 * (time.perf_counter() - start) / n
        out.append({"set": name, "expected": expected, "cases": len(items), "correct": len(items) - len(wrong),
                    "accuracy": 1 - len(wrong) / n, "ms_per_case": ms, "errors": wrong[:10]})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    data = Path(parser.parse_args().data)
    results = measure(positives(data), True) + measure(negatives(data), False)
    total = sum(r["cases"] for r in results)
    correct = sum(r["correct"] for r in results)
    lines = ["| set | must be | cases | correct | accuracy | ms/case |", "|---|---|---|---|---|---|"]
    for r in results:
        kind = "equal" if r["expected"] else "unequal"
        lines.append(
            f"| {r['set']} | {kind} | {r['cases']} | {r['correct']} | {r['accuracy']:.4f} | {r['ms_per_case']:.2f} |"
        )
    lines.append(f"| **all** | | {total} | {correct} | **{correct / total:.4f}** | |")
    md = f"# Grader accuracy\n\n{time.strftime('%Y-%m-%d')}\n\n" + "\n".join(lines) + "\n"
    errors = [f"- {r['set']}: `{p}` vs `{q}`" for r in results for p, q in r["errors"]]
    if errors:
        md += "\nMisgraded (first 10 per set):\n\n" + "\n".join(errors) + "\n"
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "grading.md").write_text(md)
    (OUT / "grading.json").write_text(json.dumps(results, indent=2))
    print(md)


if __name__ == "__main__":
    main()
