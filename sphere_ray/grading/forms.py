"""Normalising rewrites of final answers, tried only where math-verify needs them.

:mod:`sphere_ray.grading.equivalence` first asks math-verify about the answers as written. Only when
it does not say "equal" are the rewritten forms of this module handed to math-verify again, so a
rewrite can never overturn a verdict by a string rule of its own: it can only let math-verify see
an answer it could not parse. Each rewrite preserves the answer's meaning:

* ``\\varnothing``/``∅``/``\\{\\}`` -> ``\\emptyset``; ``\\textnormal`` -> ``\\text``;
* repeating decimals ``0.\\overline{3}``, ``0.(3)``, ``0.3\\dot{3}``, ``0.333...`` -> exact fractions;
* ``√2``, ``√(x+1)``, ``2pi``, ``π`` -> ``\\sqrt{2}``, ``\\sqrt{x+1}``, ``2\\pi``, ``\\pi``;
* ``1.5e3`` -> ``1500``; ``2.5 million`` -> ``2500000``;
* thousands separators (``1,000``, ``1\\,000``, ``1{,}000``, ``1,\\! 000``, ``1 000``) only in a lone
  number: never inside brackets or lists, so ``(1,100)`` keeps its comma;
* currency (``\\$``, ``dollars``, ``USD``, ``€``, ...) removed;
* a unit after a lone number (``5 m``, ``5\\text{ cm}``, ``12 apples``) split off: only a word of the
  unit vocabulary, a word written in ``\\text{}``, or a plain word of three or more letters is a
  unit. A symbol, a function (``\\cos``), a Greek letter, an operator (``\\cdot``) or a relation
  (``\\geq``) never is, so ``4\\cos\\theta`` keeps its ``\\cos\\theta``;
* ``x = 3`` -> ``3`` and ``x > 3`` -> ``(3,\\infty)`` only against a side that is not itself an
  equation or inequality (``x=3`` vs ``y=3`` stays an equation in two different variables).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "AnswerForm",
    "analyse",
    "boxed_contents",
    "final_boxes",
    "has_relation",
    "inequality_to_interval",
    "number_times_math",
    "strip_wrappers",
]

_BOX_CMDS = ("\\boxed", "\\fbox")

_UNIT_SYNONYMS: dict[str, tuple[str, ...]] = {
    "mm": ("mm", "millimeter", "millimetre"),
    "cm": ("cm", "centimeter", "centimetre"),
    "m": ("m", "meter", "metre"),
    "km": ("km", "kilometer", "kilometre"),
    "in": ("in", "inch", "inches"),
    "ft": ("ft", "foot", "feet"),
    "yd": ("yd", "yard"),
    "mi": ("mi", "mile"),
    "s": ("s", "sec", "second"),
    "min": ("min", "minute"),
    "h": ("h", "hr", "hour"),
    "day": ("day",),
    "week": ("week", "wk"),
    "month": ("month",),
    "year": ("year", "yr"),
    "g": ("g", "gram"),
    "kg": ("kg", "kilogram"),
    "mg": ("mg", "milligram"),
    "lb": ("lb", "lbs", "pound"),
    "oz": ("oz", "ounce"),
    "l": ("l", "liter", "litre"),
    "ml": ("ml", "milliliter", "millilitre"),
    "gal": ("gal", "gallon"),
    "cent": ("cent", "¢"),
    "mph": ("mph",),
    "km/h": ("km/h", "kph", "kmh"),
    "m/s": ("m/s",),
    "deg": ("deg", "degree", "°", "^\\circ", "^{\\circ}"),
}
_UNIT_CANON = {alias: canon for canon, aliases in _UNIT_SYNONYMS.items() for alias in aliases}
_SQUARE_WORDS = {"square": "^2", "sq": "^2", "cubic": "^3", "cu": "^3"}
# Words that are mathematics, never a unit, even when written after a number.
_NOT_UNITS = {
    "pi", "sqrt", "frac", "and", "or", "to", "of", "is", "no", "yes", "none", "undefined", "i", "e", "inf",
    "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "max", "min", "gcd", "lcm", "mod", "det", "lim", "times", "cdot", "div", "pm", "mp",
    "alpha", "beta", "gamma", "delta", "epsilon", "theta", "lambda", "mu", "sigma", "phi", "omega", "rho", "tau",
}  # fmt: skip
_MULTIPLIERS = {"thousand": 3, "million": 6, "billion": 9, "trillion": 12}
_CURRENCY = re.compile(
    r"\\\$|\$|€|£|¥|\\euro|\b(?:us\s*)?dollars?\b|\busd\b|\beuros?\b|\bpounds sterling\b|\\text\{\s*\}",
    re.IGNORECASE,
)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_RELATION = re.compile(r"<|>|\\[lg]eq?(?:slant)?\b|\\[lg]t\b|\\neq?\b|≤|≥|=")


@dataclass(frozen=True)
class AnswerForm:
    """A final answer split into the parts that are compared separately.

    Attributes:
        latex: the answer rewritten for math-verify (units, currency and separators removed).
        unit: canonical unit name (``"cm"``, ``"m^2"``) of a vocabulary unit, or None.
        bracket: ``"set"`` for ``\\{...\\}``, ``"tuple"`` for ``(...)``/``[...]`` with a comma inside,
            or None for anything else.
    """

    latex: str
    unit: str | None
    bracket: str | None


def boxed_contents(text: str) -> list[str]:
    """All ``\\boxed{...}``/``\\fbox{...}`` contents of ``text`` in order, nested braces respected."""
    return [content for _, _, content in boxed_spans(text)]


def boxed_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every box in ``text``, in order; ``\\boxed 5`` reads one token."""
    found: list[tuple[int, int, str]] = []
    for cmd in _BOX_CMDS:
        start = 0
        while (i := text.find(cmd, start)) != -1:
            j = i + len(cmd)
            start = j
            if text[j : j + 1].isalpha():  # e.g. \boxedfoo is another command
                continue
            content, end = _braced_or_token(text, j)
            if content is not None:
                found.append((i, end, content))
                start = end
    return sorted(found)


# What may stand between boxes that one sentence lists together: "\\boxed{-2} and \\boxed{1}".
_JOIN_BOXES = re.compile(
    r"(?:[\s$,;]|\\[()]|\\q?quad|\\text\{\s*(?:and|or|,)\s*\})*(?:(?:and|or|&)(?:[\s$,;]|\\[()]|\\q?quad)*)?"
)


def final_boxes(text: str) -> list[str]:
    """The last box's content, preceded by the boxes the same sentence lists with it (empty boxes skipped)."""
    boxes = [b for b in boxed_spans(text) if b[2].strip()]
    if not boxes:
        return []
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if not _JOIN_BOXES.fullmatch(text[box[1] : group[0][0]]):
            break
        group.insert(0, box)
    return [b[2].strip() for b in group]


def _braced_or_token(text: str, j: int) -> tuple[str | None, int]:
    """Read ``{...}`` (balanced) or a bare token starting at ``text[j]``."""
    while j < len(text) and text[j] == " ":
        j += 1
    if j < len(text) and text[j] == "{":
        depth = 0
        for k in range(j, len(text)):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            if depth == 0:
                return text[j + 1 : k], k + 1
        return None, len(text)  # unbalanced: no answer
    m = re.match(r"[^\s$]+", text[j:])
    return (m.group(0), j + m.end()) if m else (None, j)


def strip_wrappers(s: str) -> str:
    """Drop surrounding ``$``/``$$``/``\\(\\)``/``\\[\\]`` and a final full stop."""
    s = s.strip()
    changed = True
    while changed:
        old = s
        s = re.sub(r"(?<!\.)\.$", "", s.strip()).strip()  # a full stop, not an ellipsis
        for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
                s = s[len(left) : len(s) - len(right)].strip()
        changed = s != old
    return s


def _repeating_decimal(m: re.Match) -> str:
    sign, whole, fixed, rep = m.group("sign") or "", m.group("whole") or "0", m.group("fixed") or "", m.group("rep")
    value = Fraction(int(whole)) + (Fraction(int(fixed), 10 ** len(fixed)) if fixed else 0)
    value += Fraction(int(rep), (10 ** len(rep) - 1) * 10 ** len(fixed))
    return f"{'-' if sign == '-' else ''}\\frac{{{value.numerator}}}{{{value.denominator}}}"


_REPEAT_PATTERNS = [
    re.compile(r"(?P<sign>-)?(?P<whole>\d*)\.(?P<fixed>\d*)\\overline\{(?P<rep>\d+)\}"),
    re.compile(r"(?P<sign>-)?(?P<whole>\d*)\.(?P<fixed>\d*)\\dot\{?(?P<rep>\d)\}?"),
    re.compile(r"^(?P<sign>-)?(?P<whole>\d*)\.(?P<fixed>\d*)\((?P<rep>\d+)\)$"),
    re.compile(r"^(?P<sign>-)?(?P<whole>\d*)\.(?P<fixed>\d*?)(?P<rep>\d)(?P=rep)+(?:\.\.\.|\\ldots|\\cdots)$"),
]


def _rewrite_symbols(s: str) -> str:
    s = re.sub(r"\\varnothing|∅|\\\{\s*\\\}|\\empty\b(?!set)", r"\\emptyset", s)
    s = s.replace("\\textnormal", "\\text")
    for pattern in _REPEAT_PATTERNS:
        s = pattern.sub(_repeating_decimal, s)
    s = re.sub(r"√\s*\(([^()]*)\)", r"\\sqrt{\1}", s)
    s = re.sub(r"√\s*\{([^{}]*)\}", r"\\sqrt{\1}", s)
    s = re.sub(r"√\s*([0-9a-zA-Z.]+)", r"\\sqrt{\1}", s)
    s = re.sub(r"∛\s*([0-9a-zA-Z.]+)", r"\\sqrt[3]{\1}", s)
    s = s.replace("π", "\\pi").replace("∞", "\\infty").replace("×", "\\times").replace("−", "-")
    s = s.replace("≤", "\\le").replace("≥", "\\ge").replace("≠", "\\ne")
    s = re.sub(r"(?<![\\a-zA-Z])pi\b", r"\\pi", s)
    s = re.sub(r"(\d)\s*\\pi", r"\1\\pi", s)
    s = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([-+]?\d+)(?![\w.])", _sci, s)
    s = re.sub(r"\\(?:d|t)frac", r"\\frac", s)
    return s.replace("\\left", "").replace("\\right", "").replace("\\!", "")


def _sci(m: re.Match) -> str:
    value = Fraction(m.group(1)) * Fraction(10) ** int(m.group(2))
    return _fraction_latex(value)


def _fraction_latex(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


# "1,000" / "1\\,000" / "1{,}000" / "1,\\! 000" / "1 000"; "32, 349" (comma, then a space) is a list.
_LONE_GROUPED = re.compile(r"[-+]?\d{1,3}(?:(?:,|\\,|\{,\}|,\\!\s*|\\ |~|\\;|\\:|\s)\d{3})+(?:\.\d+)?")


def _remove_thousands(s: str) -> str:
    """``1,000,000`` -> ``1000000`` when ``s`` (or its leading number before a word) is one lone number."""
    m = _LONE_GROUPED.match(s)
    if not m or (m.end() < len(s) and not re.match(r"\s*(?:\\text\{|\\mbox\{|[a-zA-Z%°¢^\\])", s[m.end() :])):
        return s
    rest = s[m.end() :]
    if re.match(r"\s*\\?[,;]|\s*\d", rest):  # more list items follow: a list, not a number
        return s
    return re.sub(r"[^\d.+-]", "", m.group(0)) + rest


def _apply_multiplier(s: str) -> str:
    """``2.5 million`` -> ``2500000`` (a number followed by thousand/million/billion/trillion)."""
    m = re.fullmatch(rf"({_NUMBER})\s*(?:\\text\{{\s*)?(thousand|million|billion|trillion)\s*\}}?(.*)", s, re.I)
    if not m:
        return s
    value = Fraction(m.group(1)) * 10 ** _MULTIPLIERS[m.group(2).lower()]
    return _fraction_latex(value) + m.group(3)


def _split_unit(s: str) -> tuple[str, str | None, bool]:
    """Split ``"5\\text{ cm}^2"`` into ``("5", "cm^2", True)``; the head must be a lone number.

    Returns ``(head, unit, dropped)``: ``unit`` is the canonical vocabulary unit or None,
    ``dropped`` whether a unit or unit-like word was removed at all.
    """
    m = re.fullmatch(rf"\s*({_NUMBER}(?:\s*\\times\s*10\^\{{?-?\d+\}}?)?)(\s*)(.+?)\s*", s)
    if not m:
        return s, None, False
    unit, is_unit = _canonical_unit(m.group(3), spaced=bool(m.group(2)))
    return (m.group(1), unit, True) if is_unit else (s, None, False)


def _canonical_unit(raw: str, spaced: bool) -> tuple[str | None, bool]:
    """(canonical vocabulary unit or None, whether ``raw`` is a unit or unit-like word at all)."""
    in_text = bool(re.fullmatch(r"\s*\\(?:text|mbox|mathrm|textrm|operatorname)\s*\{[^{}]*\}(?:\^\{?\d\}?)?\s*", raw))
    if "\\" in raw and not in_text and not re.fullmatch(r"\s*\^\{?\\circ\}?\s*", raw):
        return None, False  # a LaTeX command: a function, an operator, a Greek letter or a relation
    text = re.sub(r"\\(?:text|mbox|mathrm|textrm|operatorname)\s*\{([^{}]*)\}", r" \1 ", raw)
    text = text.replace("{", "").replace("}", "").strip().lower()
    if text in ("^\\circ", "°"):
        return "deg", True
    words = text.split()
    if not words or not all(re.fullmatch(r"[a-z°¢/]+(?:\^\d)?", w) or w in ("^2", "^3") for w in words):
        return None, False
    power = ""
    if words[0] in _SQUARE_WORDS and len(words) > 1:
        power, words = _SQUARE_WORDS[words[0]], words[1:]
    if any(w.partition("^")[0] in _NOT_UNITS for w in words):
        return None, False
    name, _, exp = " ".join(words).partition("^")
    base = _UNIT_CANON.get(name) or _UNIT_CANON.get(name.rstrip("s")) or _UNIT_CANON.get(name.removesuffix("es"))
    if base and (len(name) >= 2 or spaced or in_text):  # "5m" (no space, one letter) is 5 times m
        return base + (power or ("^" + exp if exp else "")), True
    return None, in_text or (spaced and len(name) >= 3 and not exp)  # "12 apples", "10\text{ units}"


def _bracket_kind(s: str) -> str | None:
    t = s.strip()
    if t.startswith("\\{") and t.endswith("\\}"):
        return "set"
    if t[:1] in "([" and t[-1:] in ")]" and "," in t:
        return "tuple"
    return None


_REL = {
    "<": "<",
    ">": ">",
    "\\lt": "<",
    "\\gt": ">",
    "\\le": "<=",
    "\\leq": "<=",
    "\\leqslant": "<=",
    "\\ge": ">=",
    "\\geq": ">=",
    "\\geqslant": ">=",
    "<=": "<=",
    ">=": ">=",
}
_REL_RE = r"(<=|>=|\\leqslant|\\geqslant|\\leq|\\geq|\\le|\\ge|\\lt|\\gt|<|>)"


def inequality_to_interval(s: str) -> str | None:
    """``x > 3`` -> ``(3,\\infty)``; ``-2 \\le x < 5`` -> ``[-2,5)``; None if ``s`` is not one."""
    parts = [p.strip() for p in re.split(_REL_RE, s)]
    if len(parts) == 3 and re.fullmatch(r"[a-zA-Z]", parts[0]):
        lo_hi = _one_sided(_REL[parts[1]], parts[2])
    elif len(parts) == 3 and re.fullmatch(r"[a-zA-Z]", parts[2]):
        flipped = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}[_REL[parts[1]]]
        lo_hi = _one_sided(flipped, parts[0])
    elif len(parts) == 5 and re.fullmatch(r"[a-zA-Z]", parts[2]) and _REL[parts[1]][0] == _REL[parts[3]][0] == "<":
        lo_hi = (("[" if "=" in _REL[parts[1]] else "(") + parts[0], parts[4] + ("]" if "=" in _REL[parts[3]] else ")"))
    else:
        return None
    return f"{lo_hi[0]},{lo_hi[1]}" if lo_hi and all(lo_hi) else None


def _one_sided(rel: str, bound: str) -> tuple[str, str] | None:
    if not bound:
        return None
    return {
        ">": ("(" + bound, "\\infty)"),
        ">=": ("[" + bound, "\\infty)"),
        "<": ("(-\\infty", bound + ")"),
        "<=": ("(-\\infty", bound + "]"),
    }[rel]


def number_times_math(bare: str, other: str) -> bool:
    """Whether ``other`` is the lone number ``bare`` followed by math with a symbol (``332ab``, ``5 \\geq x``).

    Such an answer is never the bare number, whatever a parser that drops trailing letters says.
    """
    if not re.fullmatch(_NUMBER, bare.strip()):
        return False
    m = re.fullmatch(rf"\s*({_NUMBER})\s*(.+)", other)
    if not m or m.group(1) != bare.strip():
        return False
    rest = re.sub(r"\\(?:cdot|times|div|,|;|!|quad)|\\%|\^\{?\\circ\}?", " ", m.group(2))
    return bool(re.search(r"[a-zA-Z]", rest))


_UNDONE = re.compile(r"[\d.\s()+\-*×]*\d\s*\)?\s*(?:[+\-*×]|\\times|\\cdot)\s*\(?\s*\d[\d.\s()+\-*×]*")
_OPERATORS = re.compile(r"\\times|\\cdot|\\left|\\right")


def restates_question(answer: str, question: str) -> bool:
    """Whether ``answer`` is the question's own arithmetic left undone (``13 + 9`` for "What is 13 + 9?").

    Such an answer is number arithmetic (``+ - * ×``, ``\\times``, ``\\cdot``; no powers or fractions, which
    are values) whose numbers all appear in ``question``. math-verify evaluates it and finds it equal to the
    reference, so without this rule a model is graded right for copying the question.
    """
    text = strip_wrappers(answer).strip()
    if "^" in text or not _UNDONE.fullmatch(text):
        return False
    asked = set(re.findall(r"\d+(?:\.\d+)?", question))
    return set(re.findall(r"\d+(?:\.\d+)?", _OPERATORS.sub(" ", text))) <= asked


def has_relation(s: str) -> bool:
    """Whether ``s`` is an equation or inequality (``=``, ``<``, ``\\le``, ...)."""
    return bool(_RELATION.search(s.replace("\\left<", "").replace("\\right>", "")))


def analyse(answer: str, other: str = "") -> AnswerForm:
    """Rewrite one final answer (boxes already removed) into an :class:`AnswerForm`.

    Args:
        answer: the answer as written.
        other: the answer it will be compared with; an equation or inequality on that side keeps
            ``answer``'s own ``x =`` and relation (they are then compared as relations).
    """
    s = strip_wrappers(answer)
    s = _CURRENCY.sub(" ", s).strip()
    s = re.sub(r"^\\text\{\s*(.*?)\s*\}$", r"\1", s) if re.fullmatch(r"\\text\{[^{}]*\}", s) else s
    s = _apply_multiplier(_rewrite_symbols(_remove_thousands(s)))
    other_plain = strip_wrappers(other)
    if re.fullmatch(r"-?\d+\.\d+", other_plain) and re.fullmatch(r"-?\d+,\d+", s):  # "1,22" against "1.22"
        s = s.replace(",", ".")  # a decimal comma (math-verify's reading too) only against a decimal number
    relational_other = has_relation(other_plain)
    if not relational_other:  # "m_{\\max}=7" / "\\angle D = 75" -> "7" / "75"
        s = re.sub(r"^(?:\\angle\s*)?[a-zA-Z](?:_\{[^{}]*\}|_[a-zA-Z0-9])?(?:\([a-z]\))?\s*=\s*(?=[^=<>]+$)", "", s)
    s = re.sub(r"(\d)\s*(?:\\%|%|\\text\{\s*percent\s*\}|\s+percent\b)", r"\1\\%", s)
    head, unit, _ = _split_unit(s)
    interval = None if relational_other else inequality_to_interval(head)
    return AnswerForm(latex=interval or head, unit=unit, bracket=_bracket_kind(head))
