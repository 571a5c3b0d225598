"""Score the grader against other graders' labelled test suites, next to plain math-verify.

The rows are harvested by ``tests/data/grading/harvest.py`` (columns documented there). For each
row both graders decide whether ``pred`` grades right against ``gold``:

* **project**: :func:`sphere_ray.grading.is_correct` in lenient mode (evaluation of other people's
  outputs), the reference read through the same extraction (a ``$..$``/boxed reference is unwrapped);
* **math-verify**: ``verify(parse(gold), parse(pred))`` with its default configs (rows whose label
  depends on another option were left out at harvest); for suites whose own grader is not
  math-verify (NeMo-Skills, hendrycks/math), retried with ``$..$`` around a side it could not parse.

Disagreements where math-verify is right and the project is wrong must be listed, with a reason, in
``tests/data/grading/allowlist.json`` (``{row id: reason}``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sphere_ray.grading import is_correct

__all__ = ["Score", "load_rows", "math_verify_verdict", "project_verdict", "score"]

_NOT_MATH_VERIFY = {"nemo_skills", "hendrycks_math"}


def load_rows(folder: Path) -> list[dict]:
    """Every ``*.jsonl`` row under ``folder`` (sorted by file name, then file order)."""
    rows = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def project_verdict(row: dict, mode: str = "lenient") -> bool:
    """Whether the project grades ``row["pred"]`` right against ``row["gold"]``."""
    return is_correct(row["pred"], row["gold"], mode=mode)


def math_verify_verdict(row: dict) -> bool:
    """Plain math-verify's verdict on a row, as a user calls it: ``verify(parse(gold), parse(pred))``.

    For suites whose own grader is not math-verify (NeMo-Skills, hendrycks/math: bare answers), a side
    it cannot parse is retried inside ``$..$``.
    """
    from math_verify import parse, verify

    gold, pred = parse(row["gold"]), parse(row["pred"])
    if row["suite"] in _NOT_MATH_VERIFY:
        gold = gold or parse(f"${row['gold']}$")
        pred = pred or parse(f"${row['pred']}$")
    return bool(gold and pred and verify(gold, pred))


@dataclass
class Score:
    """Accuracy of both graders on one (suite, kind) group of rows.

    Attributes:
        suite, kind: the group (``kind`` is ``"equivalence"``, ``"extraction"`` or ``"all"``).
        rows: rows in the group; project / math_verify: rows each grader got right.
        regressions: ids where math-verify is right and the project is wrong.
        gains: ids where the project is right and math-verify is wrong.
    """

    suite: str
    kind: str
    rows: int = 0
    project: int = 0
    math_verify: int = 0
    regressions: list[str] | None = None
    gains: list[str] | None = None

    def add(self, row: dict, ours: bool, theirs: bool) -> None:
        """Count one row: the project's verdict ``ours`` and math-verify's ``theirs``."""
        self.rows += 1
        self.project += ours == row["expected"]
        self.math_verify += theirs == row["expected"]
        if theirs == row["expected"] != ours:
            self.regressions = [*(self.regressions or []), row["id"]]
        if ours == row["expected"] != theirs:
            self.gains = [*(self.gains or []), row["id"]]


def score(rows: Iterable[dict], mode: str = "lenient") -> tuple[list[Score], dict[str, dict]]:
    """Per-(suite, kind) scores plus one ``all`` line per suite and overall, and the verdict per row id."""
    groups: dict[tuple[str, str], Score] = {}
    verdicts = {}
    for row in rows:
        ours, theirs = project_verdict(row, mode), math_verify_verdict(row)
        verdicts[row["id"]] = {"project": ours, "math_verify": theirs, "expected": row["expected"]}
        for key in ((row["suite"], row["kind"]), (row["suite"], "all"), ("all", "all")):
            groups.setdefault(key, Score(*key)).add(row, ours, theirs)
    return sorted(groups.values(), key=lambda s: (s.suite == "all", s.suite, s.kind)), verdicts
