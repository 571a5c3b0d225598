"""Rewrite rules that put final answers into a form math-verify parses well.

math-verify (the grader :mod:`sphere_ray.grading` is built on) is weak on several answer forms that
real model outputs use. Each rule here turns one such form into plain LaTeX, or splits off a part
(units, set/tuple brackets) that must be compared separately:

* ``\\varnothing``/``∅``/``\\{\\}`` -> ``\\emptyset``;
* repeating decimals ``0.\\overline{3}``, ``0.(3)``, ``0.3\\dot{3}`` -> exact fractions;
* ``√2``, ``√(x+1)``, ``2pi``, ``π`` -> ``\\sqrt{2}``, ``\\sqrt{x+1}``, ``2\\pi``, ``\\pi``;
* ``1.5e3`` -> ``1500``; thousands separators ``1\\,000``, ``1{,}000``, ``1 000`` -> ``1000``;
* currency (``\\$``, ``dollars``, ``USD``, ``€``, ...) removed;
* units (``5 m``, ``5\\text{ cm}``) split off so that ``5 m`` and ``5 cm`` differ;
* one-variable inequalities (``x > 3``, ``-2 \\le x < 5``) -> intervals.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

__all__ = ["AnswerForm", "analyse", "boxed_contents", "inequality_to_interval"]

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
_NOT_UNITS = {"pi", "sqrt", "frac", "and", "or", "to", "of", "is", "no", "yes", "none", "undefined", "i"}
_CURRENCY = re.compile(
    r"\\\$|\$|€|£|¥|\\euro|\b(?:us\s*)?dollars?\b|\busd\b|\beuros?\b|\bpounds sterling\b|\\text\{\s*\}",
    re.IGNORECASE,
)
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"


@dataclass(frozen=True)
class AnswerForm:
    """A final answer split into the parts that are compared separately.

    Attributes:
        latex: the answer rewritten into LaTeX that math-verify parses (units and currency removed).
        unit: canonical unit name (``"cm"``, ``"m^2"``), or None when the answer has no unit.
        bracket: ``"set"`` for ``\\{...\\}``, ``"tuple"`` for ``(...)``/``[...]`` with a comma inside,
            or None for anything else.
    """

    latex: str
    unit: str | None
    bracket: str | None


def boxed_contents(text: str) -> list[str]:
    """All ``\\boxed{...}``/``\\fbox{...}`` contents of ``text`` in order, nested braces respected.

    ``\\boxed 5`` (no braces) yields the next whitespace-delimited token.
    """
    found: list[tuple[int, str]] = []
    for cmd in _BOX_CMDS:
        start = 0
        while (i := text.find(cmd, start)) != -1:
            j = i + len(cmd)
            start = j
            if text[j : j + 1].isalpha():  # e.g. \boxedfoo is another command
                continue
            content, end = _braced_or_token(text, j)
            if content is not None:
                found.append((i, content))
                start = end
    return [c for _, c in sorted(found)]


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


def _strip_wrappers(s: str) -> str:
    s = s.strip()
    changed = True
    while changed:
        old = s
        s = re.sub(r"(?<!\.)\.$", "", s.strip()).strip()  # a full stop, not an ellipsis
        for left, right in (("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
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
    re.compile(r"(?P<sign>-)?(?P<whole>\d*)\.(?P<fixed>\d*)\((?P<rep>\d+)\)"),
    re.compile(r"(?P<sign>-)?(?P<whole>\d*)\.(?P<fixed>\d*?)(?P<rep>\d)(?:\.\.\.|\\ldots|\\cdots)$"),
]


def _rewrite_symbols(s: str) -> str:
    s = re.sub(r"\\varnothing|∅|\\\{\s*\\\}|\\empty\b(?!set)", r"\\emptyset", s)
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
    s = s.replace("\\left", "").replace("\\right", "").replace("\\!", "")
    return s


def _sci(m: re.Match) -> str:
    value = Fraction(m.group(1)) * Fraction(10) ** int(m.group(2))
    return str(value.numerator) if value.denominator == 1 else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _remove_thousands(s: str) -> str:
    s = re.sub(r"(?<=\d)(?:\\,|\{,\}|\\ |~|\\;|\\:|\s)(?=\d{3}(?!\d))", "", s)
    # plain "1,000,000" (only when every group has three digits, so "1,2" stays a list)
    return re.sub(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])(?:\.\d+)?", lambda m: m.group(0).replace(",", ""), s)


def _split_unit(s: str) -> tuple[str, str | None]:
    """Split ``"5\\text{ cm}^2"`` into ``("5", "cm^2")``; the head must be a number."""
    m = re.fullmatch(rf"\s*({_NUMBER}(?:\s*\\times\s*10\^\{{?-?\d+\}}?)?)(\s*)(.+?)\s*", s)
    if not m:
        return s, None
    unit = _canonical_unit(m.group(3), spaced=bool(m.group(2)))
    return (m.group(1), unit) if unit else (s, None)


def _canonical_unit(raw: str, spaced: bool) -> str | None:
    text = re.sub(r"\\(?:text|mbox|mathrm|textrm|operatorname)\s*\{([^{}]*)\}", r" \1 ", raw)
    text = text.replace("\\", " ").replace("{", "").replace("}", "").strip().lower()
    words = text.split()
    if not words or not all(re.fullmatch(r"[a-z°¢/]+(?:\^\d)?", w) or w in ("^2", "^3") for w in words):
        return None
    power = ""
    if words[0] in _SQUARE_WORDS:
        power, words = _SQUARE_WORDS[words[0]], words[1:]
    if not words or any(w in _NOT_UNITS for w in words):
        return None
    name = " ".join(words)
    marked = spaced or "\\text" in raw or "mathrm" in raw
    if len(name.partition("^")[0]) < 2 and not (marked and name.partition("^")[0] in _UNIT_CANON):
        return None  # a lone letter is a variable ("5x"), not a unit
    name, _, exp = name.partition("^")
    base = (
        _UNIT_CANON.get(name)
        or _UNIT_CANON.get(name.rstrip("s"))
        or _UNIT_CANON.get(name[:-2] if name.endswith("es") else name)
        or name.rstrip("s")
    )
    return base + (power or ("^" + exp if exp else ""))


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


def analyse(answer: str) -> AnswerForm:
    """Rewrite one final answer (boxes already removed) into an :class:`AnswerForm`."""
    s = _strip_wrappers(answer)
    s = _CURRENCY.sub(" ", s).strip()
    s = re.sub(r"^\\text\{\s*(.*?)\s*\}$", r"\1", s) if re.fullmatch(r"\\text\{[^{}]*\}", s) else s
    s = _rewrite_symbols(_remove_thousands(s))
    s = re.sub(r"^[a-zA-Z](?:_\{[^{}]*\}|_[a-zA-Z0-9])?\s*=\s*(?=[^=]+$)", "", s)  # "m_{\\max}=7" -> "7"
    s = re.sub(r"(\d)\s*(?:\\%|%|\\text\{\s*percent\s*\}|\s+percent\b)", r"\1\\%", s)
    head, unit = _split_unit(s)
    interval = inequality_to_interval(head)
    return AnswerForm(latex=interval or head, unit=unit, bracket=_bracket_kind(head))
