"""Grader accuracy: the project vs plain math-verify on other graders' test suites, then constructed cases.

Headline: the harvested corpus ``tests/data/grading/`` (Math-Verify, lighteval, NeMo-Skills and
hendrycks/math test suites; ``tests/data/grading/harvest.py``), per suite, equivalence and extraction
rows separately, with both graders on the same rows (:mod:`sphere_ray.grading.suites`). The project
is graded in lenient mode (other people's outputs); strict mode (the search's terminal steps) is
shown next to it.

Secondary: constructed cases from the bundled benchmark data (``sphere_ray/data``):
* positives (must grade equal): MATH-500 reference solutions' extracted answers, GSM8K ``#### X``,
  OlympiadBench answers as ``$..$``, boxed and right-hand side, AIME/AMC ``The answer is X.``;
* negatives (must grade unequal): each answer against the next problem's different answer.

Results: ``benchmarks/results/grading.{md,json}``.

    python benchmarks/grading.py [--data sphere_ray/data]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sphere_ray.files import write_json, write_text
from sphere_ray.grading import extract_answer, is_equivalent
from sphere_ray.grading.suites import load_rows, score

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results"
CORPUS = ROOT / "tests" / "data" / "grading"


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


def constructed(cases: dict[str, list[tuple[str, str]]], expected: bool) -> list[dict]:
    out = []
    for name, items in cases.items():
        start = time.perf_counter()
        wrong = [(p, r) for p, r in items if is_equivalent(p, r) is not expected]
        n = max(len(items), 1)
        out.append({"set": name, "expected": expected, "cases": len(items), "correct": len(items) - len(wrong),
                    "accuracy": 1 - len(wrong) / n, "ms_per_case": 1000 * (time.perf_counter() - start) / n,
                    "errors": wrong[:10]})  # fmt: skip
    return out


def corpus_table() -> tuple[list[str], dict]:
    corpus = load_rows(CORPUS)
    start = time.perf_counter()
    lenient, verdicts = score(corpus, "lenient")
    ms = 1000 * (time.perf_counter() - start) / len(corpus)
    strict = {(s.suite, s.kind): s for s in score(corpus, "strict")[0]}
    lines = ["| suite | rows | kind | project (lenient) | project (strict) | math-verify | "
             "project right, math-verify wrong | math-verify right, project wrong |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for s in lenient:
        st = strict[(s.suite, s.kind)]
        name = f"**{s.suite}**" if s.suite == "all" else s.suite
        strict_acc = f"{st.project / st.rows:.3f}" if s.kind == "extraction" else "—"
        lines.append(f"| {name} | {s.rows} | {s.kind} | {s.project / s.rows:.3f} | {strict_acc} | "
                     f"{s.math_verify / s.rows:.3f} | {len(s.gains or [])} | {len(s.regressions or [])} |")  # fmt: skip
    result = {"rows": len(corpus), "ms_per_row_both_graders": ms,
              "suites": [vars(s) | {"strict_project": strict[(s.suite, s.kind)].project} for s in lenient],
              "verdicts": verdicts}  # fmt: skip
    return lines, result


def _source_line(suite: str, info: dict) -> str:
    skipped = ", ".join(f"{n} {reason}" for reason, n in info["skipped"].items()) or "none"
    return (f"- {suite}: `{info['repo']}` @ `{info['commit'][:12]}` ({info['license']}): {info['rows']} rows, "
            f"skipped {sum(info['skipped'].values())} ({skipped})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "sphere_ray" / "data"), help="benchmark JSONL folder")
    data = Path(parser.parse_args().data)
    suite_lines, suites = corpus_table()
    built = constructed(positives(data), True) + constructed(negatives(data), False)
    total, correct = sum(r["cases"] for r in built), sum(r["correct"] for r in built)
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    sources = "\n".join(_source_line(k, v) for k, v in manifest.items())
    md = (f"# Grader accuracy\n\n{time.strftime('%Y-%m-%d')}. `python benchmarks/grading.py`\n\n"
          "## Other graders' test suites (headline)\n\nSame rows for both graders; math-verify as a user calls it, "
          "`verify(parse(gold), parse(pred))`. Strict mode is shown on extraction rows only: it reads explicit "
          "answers (boxes, final-answer statements) and by design finds none in a bare answer or in prose "
          "that states no answer.\n\n" + "\n".join(suite_lines) +
          f"\n\nSources (`tests/data/grading/manifest.json`):\n\n{sources}\n\n"
          f"Both graders: {suites['ms_per_row_both_graders']:.1f} ms per row.\n\n"
          "## Constructed cases from the bundled benchmarks (secondary)\n\n"
          f"**{correct}/{total} = {correct / total:.4f}**\n\n"
          "| set | must be | cases | correct | accuracy | ms/case |\n|---|---|---|---|---|---|\n")  # fmt: skip
    md += "".join(f"| {r['set']} | {'equal' if r['expected'] else 'unequal'} | {r['cases']} | {r['correct']} | "
                  f"{r['accuracy']:.4f} | {r['ms_per_case']:.2f} |\n" for r in built)  # fmt: skip
    by_id = {r["id"]: r for r in load_rows(CORPUS)}
    wrong = [by_id[i] for i, v in suites["verdicts"].items() if v["project"] != v["expected"]]
    md += "\nCorpus rows the project (lenient) still gets wrong:\n\n" + "".join(
        f"- `{r['id']}` ({r['source']['path']}:{r['source']['line']}): expected {r['expected']}, "
        f"math-verify {suites['verdicts'][r['id']]['math_verify']}: `{r['gold']}` vs `{r['pred']}`\n"
        for r in wrong
    )
    errors = [f"- {r['set']}: `{p}` vs `{q}`" for r in built for p, q in r["errors"]]
    if errors:
        md += "\nMisgraded constructed cases (first 10 per set):\n\n" + "\n".join(errors) + "\n"
    write_text(OUT / "grading.md", md)
    write_json(OUT / "grading.json", {"corpus": suites, "constructed": built})
    print(md)


if __name__ == "__main__":
    main()
