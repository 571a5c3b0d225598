"""Grader tests: extraction formats, equivalences it must accept, and ones it must reject."""

import json
import threading
from pathlib import Path

import pytest

from sphere_ray.grading import extract_answer, is_correct, is_equivalent

DATA = Path(__file__).resolve().parents[2] / "sphere_ray" / "data"

EXTRACT = [
    ("so the total is \\boxed{72}.", "72"),
    ("\\boxed{1} first try, then \\boxed{2} final", "2"),  # the LAST box
    ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),  # nested braces
    ("$\\boxed{\\left\\{ 1, 2 \\right\\}}$", "\\left\\{ 1, 2 \\right\\}"),
    ("answer \\fbox{5}", "5"),
    ("\\boxed 7 is it", "7"),
    ("#### 1,234", "1,234"),
    ("Natalia sold 72.\n#### 72\nThanks!", "72"),
    ("The answer is 42.", "42"),
    ("The answer is 42. I hope this helps!", "42"),
    ("The final answer is $\\frac{3}{4}$. Done", "\\frac{3}{4}"),
    ("Therefore, the final answer is: 3.5", "3.5"),
    ("the answer is: -7 because we subtract", "-7"),
    ("Answer: 12 apples", "12 apples"),
    ("**Answer:** 9", "9"),
    ("The answer is \\(x = 2\\).", "x = 2"),
    ("The answer is 5 (since 2+3=5).", "5"),
    ("First, the answer is 3. Then we recheck: the answer is 4.", "4"),
    ("no final answer here", None),
    ("", None),
    ("\\boxed{unbalanced", None),
    ("\\boxed{} The answer is 6", "6"),  # an empty box is no answer
]


@pytest.mark.parametrize("text, expected", EXTRACT)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


EQUAL = [
    ("72", "72"), ("72.0", "72"), ("072", "72"), ("1,000", "1000"), ("1\\,000", "1000"), ("1{,}000", "1000"),
    ("1 000 000", "1000000"), ("\\frac{1}{2}", "0.5"), ("\\dfrac12", "\\frac{1}{2}"), ("1/2", "\\frac{1}{2}"),
    ("\\tfrac{3}{4}", "0.75"), ("-3", "-3"), ("\\frac{639}{40}", "15\\frac{39}{40}"),
    ("50\\%", "50"), ("50%", "50"), ("50", "50\\%"), ("50 percent", "50"), ("0.5", "50\\%"),
    ("\\varnothing", "\\emptyset"), ("∅", "\\emptyset"), ("\\{\\}", "\\emptyset"),
    ("0.\\overline{3}", "\\frac{1}{3}"), ("0.(3)", "1/3"), ("0.1\\overline{6}", "\\frac{1}{6}"),
    ("0.333...", "\\frac13"), ("1.\\overline{142857}", "\\frac{8}{7}"),
    ("√2", "\\sqrt{2}"), ("3√2", "3\\sqrt{2}"), ("√(18)", "3\\sqrt{2}"), ("\\sqrt{18}", "3\\sqrt2"),
    ("2pi", "2\\pi"), ("2π", "2\\pi"), ("pi/2", "\\frac{\\pi}{2}"), ("\\pi", "π"),
    ("1.5e3", "1500"), ("2E-2", "0.02"), ("1.5\\times10^{3}", "1500"),
    ("\\$5", "5"), ("5 dollars", "5"), ("\\$1,234.50", "1234.5"), ("$18.00", "18"), ("USD 40", "40"),
    ("5 cm", "5"), ("5\\text{ cm}", "5 \\text{cm}"), ("5 centimeters", "5 cm"), ("12 apples", "12"),
    ("10^{\\circ}", "10"), ("30^\\circ", "30"), ("3 \\text{ m}^2", "3"),
    ("x>3", "(3,\\infty)"), ("x \\ge 3", "[3,\\infty)"), ("x \\le -1", "(-\\infty,-1]"),
    ("-2\\le x<5", "[-2,5)"), ("x < 2", "(-\\infty, 2)"), ("(3, \\infty)", "x>3"),
    ("k=3", "3"), ("3", "k=3"), ("x = 2", "2"), ("m_{\\max}=n^2-n-1", "n^{2}-n-1"),
    ("f(x)=x+1", "x+1"), ("\\{1, 2\\}", "\\{2, 1\\}"), ("1,2", "\\{1,2\\}"), ("(1,2)", "(1, 2)"),
    ("[1,2)", "[1, 2)"), ("\\text{(B)}", "B"), ("\\textbf{(C)}", "C"), ("\\text{Monday}", "Monday"),
    ("\\boxed{3} and \\boxed{4}", "4"), ("\\boxed{3}, \\boxed{4}", "3, 4"), ("\\boxed{7}", "7"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"), ("2\\sqrt{2}", "\\sqrt{8}"), ("x^2+2x+1", "(x+1)^2"),
    ("\\left(1, 2\\right)", "(1,2)"), ("$\\frac{1}{3}$", "\\frac{1}{3}"), ("\\(7\\)", "7"), ("7.", "7"),
    ("-\\frac{1}{2}", "-0.5"), ("\\frac{-1}{2}", "-\\frac12"), ("0.25", "\\frac14"), ("1e3", "1000"),
    ("\\infty", "∞"), ("3 \\times 4", "12"), ("2^{10}", "1024"), ("\\binom{5}{2}", "10"),
]  # fmt: skip

UNEQUAL = [
    ("5 m", "5 cm"), ("5\\text{ m}", "5 \\text{ cm}"), ("3 hours", "3 minutes"), ("2 kg", "2 g"),
    ("\\{1,2\\}", "(1,2)"), ("(1,2)", "\\{1,2\\}"), ("[1,2]", "\\{1,2\\}"),
    ("72", "73"), ("0.5", "0.6"), ("\\frac{1}{2}", "\\frac{1}{3}"), ("-3", "3"), ("1000", "100"),
    ("1,000", "1"), ("\\sqrt{2}", "2"), ("2\\pi", "\\pi"), ("1.5e3", "150"), ("x>3", "[3,\\infty)"),
    ("x \\ge 3", "(3, \\infty)"), ("(1,2)", "(2,1)"), ("[1,2)", "(1,2]"), ("0.\\overline{3}", "0.3"),
    ("\\emptyset", "0"), ("A", "B"), ("\\text{(B)}", "C"), ("", "5"), ("5", ""), ("None", "5"),
    ("\\boxed{3} and \\boxed{4}", "3"), ("12 apples", "13"), ("50\\%", "5"), ("x^2", "x^3"),
    ("\\frac{639}{40}", "15"), ("k=4", "3"), ("\\infty", "-\\infty"), ("(3,\\infty)", "(-\\infty,3)"),
]  # fmt: skip


@pytest.mark.parametrize("pred, ref", EQUAL)
def test_equivalent(pred, ref):
    assert is_equivalent(pred, ref) is True


@pytest.mark.parametrize("pred, ref", UNEQUAL)
def test_not_equivalent(pred, ref):
    assert is_equivalent(pred, ref) is False


@pytest.mark.parametrize("bad", [None, 5, ["1"], "x" * 5000, "\\frac{", "}}}{{{", "\\boxed{\\boxed{"])
def test_never_raises(bad):
    assert is_equivalent(bad, "5") is False
    assert is_equivalent("5", bad) is False


def test_works_off_the_main_thread():
    """Ray actors and Serve replicas call it from worker threads (no signal.alarm there)."""
    out = {}

    def work():
        out["eq"] = is_equivalent("\\frac{1}{2}", "0.5")
        out["ne"] = is_equivalent("x^2+1", "x^2+2")

    t = threading.Thread(target=work)
    t.start()
    t.join(timeout=120)
    assert out == {"eq": True, "ne": False}


def test_pathological_input_returns_within_the_timeout():
    import time

    start = time.monotonic()
    assert is_equivalent("9^{9^{9^{9^{9}}}}", "9^{9^{9^{9^{8}}}}") in (True, False)
    assert time.monotonic() - start < 30


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_gsm8k_reference_solutions_grade_right():
    """Every bundled GSM8K reference solution, in '#### X' form, grades right against its answer."""
    rows = _rows(DATA / "gsm8k_train_sample.jsonl")
    for row in rows:
        text = f"{row['solution']}\n#### {row['answer']}"
        assert is_equivalent(extract_answer(text), row["answer"]), row["id"]
        assert not is_equivalent(extract_answer(text), str(int(row["answer"]) + 1)), row["id"]


@pytest.mark.parametrize(
    "solution, reference, question, right",
    [("\\boxed{13 + 9}", "22", "What is 13 + 9?", False),
     ("So, the answer is: 13 + 9.", "22", "What is 13 + 9?", False),
     ("\\boxed{4 \\times 3}", "12", "There are 4 bags with 3 pens in each. How many pens?", False),
     ("\\boxed{(31 - 4)}", "27", "Mia has 31 marbles and gives away 4.", False),
     ("The answer is 13 + 9 = 22.", "22", "What is 13 + 9?", True), ("\\boxed{22}", "22", "What is 13 + 9?", True),
     ("\\boxed{3 \\times 4}", "12", "What is the area of a 2 by 6 rectangle?", True),  # not the question's numbers
     ("\\boxed{2^{10}}", "1024", "What is 2 to the 10th power?", True), ("\\boxed{1/2}", "0.5", "Halve 1.", True),
     ("\\boxed{13 + 9}", "22", None, True)],  # no question: math-verify's verdict, as before
)  # fmt: skip
def test_an_answer_that_restates_the_questions_arithmetic_is_wrong(solution, reference, question, right):
    assert is_correct(solution, reference, question=question) is right
