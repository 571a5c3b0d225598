"""Harvest labelled grading cases from other math graders' public test suites into JSONL.

Each suite's test file is read as Python source (never imported or run): the literal rows of its
``pytest.mark.parametrize`` tables (or its unittest assertions) become rows of
``tests/data/grading/<suite>.jsonl``. Every row names its source repository, commit, path, test
and license. Rows that depend on a non-default option of the suite's grader are skipped, with a
count per reason in ``manifest.json``.

Row columns: ``id`` (str), ``suite`` (str), ``test`` (the test function), ``gold`` (the reference
as the suite writes it), ``pred`` (the answer or model output being graded), ``expected`` (bool),
``kind`` (``"equivalence"`` when ``pred`` is a bare answer, ``"extraction"`` when it is text the
answer must be found in), ``mv_options`` (the math-verify extraction the suite ran the row with:
``match_types``, ``boxed_priority_0``; kept rows grade the same under math-verify's defaults),
``source`` (``repo``, ``commit``, ``path``, ``line``, ``license``).

Usage (the repositories are local clones of the pinned commits)::

    python tests/data/grading/harvest.py --clones /tmp/h
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
from collections import Counter
from pathlib import Path

OUT = Path(__file__).resolve().parent

# suite -> (clone folder, repo, license, test files)
SUITES: dict[str, tuple[str, str, str, list[str]]] = {
    "math_verify": (
        "huggingface+Math-Verify",
        "huggingface/Math-Verify",
        "Apache-2.0 (repo LICENCE; test files carry an MIT header)",
        [
            "tests/test_all.py",
            "tests/test_boxed.py",
            "tests/test_numina_cases.py",
            "tests/test_open_thoughts.py",
            "tests/test_yujianll.py",
            "tests/test_strict.py",
        ],
    ),
    "lighteval": (
        "huggingface+lighteval",
        "huggingface/lighteval",
        "MIT",
        ["tests/unit/metrics/test_extractive_match.py"],
    ),
    "nemo_skills": ("NVIDIA+NeMo-Skills", "NVIDIA/NeMo-Skills", "Apache-2.0", ["tests/test_math_equal.py"]),
    "hendrycks_math": ("hendrycks+math", "hendrycks/math", "MIT", ["modeling/math_equivalence_test.py"]),
}

DEFAULT_MATCH = ["latex", "expr"]
# Whole files left out, with the reason (listed in manifest.json).
SKIPPED_FILES = {
    "math_verify": {"tests/test_string_extraction.py": "StringExtractionConfig (multiple-choice strings), not math"},
}


def _value(node: ast.AST):
    """A literal, a ``Language.X`` attribute (-> ``"X"``) or constant arithmetic (``5 / 2``)."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "param":  # pytest.param(...)
        return tuple(_value(a) for a in node.args)
    if isinstance(node, ast.BinOp):
        return eval(compile(ast.Expression(node), "<row>", "eval"), {"__builtins__": {}})  # constants only
    if isinstance(node, (ast.Tuple, ast.List)):
        return (
            type(node.elts)(_value(e) for e in node.elts)
            if isinstance(node, ast.List)
            else tuple(_value(e) for e in node.elts)
        )
    return ast.literal_eval(node)


def _is_text(s: object) -> bool:
    """Whether a prediction is prose the answer must be found in (not a bare answer)."""
    if not isinstance(s, str):
        return False
    t = re.sub(r"\\(?:text|textbf|mathrm|mbox|textnormal)\{[^{}]*\}", " ", s)
    t = re.sub(r"\\[a-zA-Z]+", " ", t)
    return "\\boxed" in s or "\n" in s.strip() or bool(re.search(r"(?<![a-zA-Z])[a-zA-Z]{3,}", t))


def _call_options(func: ast.FunctionDef) -> tuple[str, dict[str, ast.AST], ast.AST | None]:
    """The grader call in a test body: (callee name, its arguments by name, the expected-value node)."""
    for node in ast.walk(func):
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Call):
            call = node.left
            if getattr(call.func, "id", "") == "int" and call.args:  # int(verify(...)) == result
                call = call.args[0]
            name = getattr(call.func, "id", getattr(call.func, "attr", ""))
            args = {f"_{i}": a for i, a in enumerate(call.args)} | {k.arg: k.value for k in call.keywords}
            return name, args, node.comparators[0]
    for node in ast.walk(func):  # NeMo-Skills: output = math_equal(a, b); assert output is True
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
            return "math_equal", {}, node.test.comparators[0]
    return "", {}, None


def _resolve(node: ast.AST | None, row: dict, default):
    if node is None:
        return default
    if isinstance(node, ast.Name) and node.id in row:
        return row[node.id]
    return _value(node)


def _parametrized(tree: ast.Module):
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        for deco in func.decorator_list:
            if isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") == "parametrize":
                names = [n.strip() for n in _value(deco.args[0]).split(",")]
                for item in deco.args[1].elts:
                    try:
                        values = _value(item)
                    except (ValueError, TypeError, NameError):
                        yield func, None, item.lineno  # built by code (an f-string, a call): not a literal row
                        continue
                    values = values if len(names) > 1 else (values,)
                    yield func, dict(zip(names, values, strict=True)), item.lineno


def _rows_compare_strings(func, row: dict, line: int, callee: str, args: dict, expected_node) -> tuple[list, str]:
    """Rows of a Math-Verify/lighteval ``compare_strings``/``verify(parse(..))`` test, or a skip reason."""
    if callee == "parse":
        return [], "string-extraction config (StringExtractionConfig), not a default grader option"
    if callee == "verify":  # verify(parse(gold), parse(pred)): parse's default configs
        gold, pred, match, prio0 = row["gold"], row["pred"], DEFAULT_MATCH, False
    else:
        gold, pred = row["gold"], row["pred"]
        language = _resolve(args.get("language", args.get("_2")), row, "ENGLISH")
        if language != "ENGLISH":
            return [], "non-English language option"
        match = _resolve(args.get("match_types", args.get("_3")), row, DEFAULT_MATCH)
        if "NativeLetters" in match:
            return [], "multiple-choice letter extraction (IndicesExtractionConfig)"
        if _resolve(args.get("precision"), row, 6) != 6:
            return [], "non-default float precision"
        if _resolve(args.get("strict"), row, True) is not True:
            return [], "strict=False"
        if _resolve(args.get("allow_set_relation_comp"), row, False):
            return [], "allow_set_relation_comp=True"
        prio0 = True
    expected = _resolve(expected_node, row, None)
    return [dict(gold=gold, pred=pred, expected=bool(expected), mv_options=dict(match_types=list(match),
                 boxed_priority_0=prio0))], ""  # fmt: skip


def _rows_nemo(func, row: dict) -> tuple[list, str]:
    a, b = row["output_pair"]
    if a is None or b is None:
        return [], "None answer (not a string)"
    expected = func.name == "test_correct_examples"
    opts = dict(match_types=DEFAULT_MATCH, boxed_priority_0=False)
    return [dict(gold=str(b), pred=str(a), expected=expected, mv_options=opts),
            dict(gold=str(a), pred=str(b), expected=expected, mv_options=opts)], ""  # fmt: skip


def _rows_hendrycks(tree: ast.Module) -> list[tuple[str, int, dict]]:
    """unittest methods: ``test_in = ...; test_out = ...; self.assertTrue/False(is_equiv(test_in, test_out))``.

    hendrycks' strings write ``\\\\frac`` (a doubled backslash) that its normaliser turns into
    ``\\frac``; the conversion does the same so the row means what the suite tests.
    """
    out = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef) or not func.name.startswith("test"):
            continue
        env = {}
        for stmt in func.body:
            if isinstance(stmt, ast.Assign):
                env[stmt.targets[0].id] = ast.literal_eval(stmt.value)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
                expected = stmt.value.func.attr == "assertTrue"
                a, b = (env[n.id] for n in stmt.value.args[0].args)
                a, b = (s.replace("\\\\", "\\") for s in (a, b))
                opts = dict(match_types=DEFAULT_MATCH, boxed_priority_0=False)
                out.append((func.name, stmt.lineno, dict(gold=b, pred=a, expected=expected, mv_options=opts)))
    return out


def _depends_on_options(row: dict) -> bool:
    """Whether math-verify with its default configs gives another verdict than with the suite's options.

    Math-Verify's and lighteval's tests pin extraction options (``match_types=["latex"]``,
    ``boxed_match_priority=0``); a row whose verdict changes under math-verify's defaults tests that
    option, not the default grader, and is skipped.
    """
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    opts = row["mv_options"]
    latex = LatexExtractionConfig(boxed_match_priority=0) if opts["boxed_priority_0"] else LatexExtractionConfig()
    configs = [c for name, c in (("latex", latex), ("expr", ExprExtractionConfig())) if name in opts["match_types"]]
    with_options = bool(verify(parse(row["gold"], configs), parse(row["pred"], configs)))
    return with_options != bool(verify(parse(row["gold"]), parse(row["pred"])))


def harvest_suite(suite: str, clones: Path) -> tuple[list[dict], Counter]:
    folder, repo, license_, paths = SUITES[suite]
    clone = clones / folder
    commit = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    rows, skipped = [], Counter()
    for path in paths:
        tree = ast.parse((clone / path).read_text())
        found: list[tuple[str, int, dict]] = []
        if suite == "hendrycks_math":
            found = _rows_hendrycks(tree)
        for func, row, line in _parametrized(tree) if suite != "hendrycks_math" else []:
            if row is None:
                skipped["row built by code, not a literal"] += 1
                continue
            callee, args, expected_node = _call_options(func)
            if suite == "nemo_skills":
                made, reason = _rows_nemo(func, row)
            else:
                made, reason = _rows_compare_strings(func, row, line, callee, args, expected_node)
            if reason:
                skipped[reason] += 1
            found += [(func.name, line, r) for r in made]
        for test, line, r in found:
            if not isinstance(r["gold"], str) or not isinstance(r["pred"], str):
                skipped["non-string answer"] += 1
                continue
            if suite in ("math_verify", "lighteval") and _depends_on_options(r):
                skipped["label depends on the suite's extraction options (math-verify's defaults disagree)"] += 1
                continue
            r = dict(id=f"{suite}-{len(rows):04d}", suite=suite, test=test, **r,
                     kind="extraction" if _is_text(r["pred"]) else "equivalence",
                     source=dict(repo=repo, commit=commit, path=path, line=line, license=license_))  # fmt: skip
            r = {k: r[k] for k in ("id", "suite", "test", "gold", "pred", "expected", "kind", "mv_options", "source")}
            rows.append(r)
    return rows, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clones", type=Path, required=True, help="folder with <owner>+<name>/ clones")
    clones = parser.parse_args().clones
    manifest = {}
    for suite, (_, repo, license_, paths) in SUITES.items():
        rows, skipped = harvest_suite(suite, clones)
        (OUT / f"{suite}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        manifest[suite] = dict(repo=repo, commit=rows[0]["source"]["commit"], paths=paths, license=license_,
                               rows=len(rows), skipped=dict(skipped),
                               skipped_files=SKIPPED_FILES.get(suite, {}))  # fmt: skip
        print(suite, len(rows), dict(skipped))
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
