"""The rule filters of Phase 1 (and Phase 2): named checks, each giving the reason it drops a sample.

The paper keeps samples by "predefined rules" it does not list; these are the rules of the open
long-CoT pipelines (Open-R1 / OpenThoughts: math-verify correctness, truncation, length; S2R and SCoRe:
a correction must not flip a right answer) plus the behaviour check the method needs. Every rule is
named (``FILTERS``), can be switched off (``FilterConfig.filters``) and writes its reason into the
sample's reject row; :func:`acceptance` gives the rates per filter and per template.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sphere_ray.config import option
from sphere_ray.dialogue.behaviours import behaviours_present
from sphere_ray.dialogue.sample import Dialogue
from sphere_ray.dialogue.templates import BEHAVIOURS
from sphere_ray.grading.forms import boxed_spans

__all__ = ["FILTERS", "FILTER_NAMES", "FilterConfig", "acceptance", "check"]

FILTER_NAMES = ("final_correct", "one_final_answer", "not_truncated", "behaviours", "no_repetition", "length",
                "not_restatement", "no_flip")  # fmt: skip


@dataclass
class FilterConfig:
    """Which rules drop a dialogue sample, and their thresholds."""

    filters: list[str] = field(
        default_factory=lambda: list(FILTER_NAMES), metadata={"help": f"rules to apply, of {list(FILTER_NAMES)}"}
    )
    min_tokens: int = option(16, "fewest generated tokens over all turns")
    max_tokens: int = option(8192, "most generated tokens over all turns")
    required_behaviours: list[str] | None = field(
        default=None,
        metadata={"help": "behaviours the re-examination turns must show (cue detector); null: each turn the "
                  "behaviour its template asked for; []: none"},
    )  # fmt: skip
    repeat_ngram: int = option(10, "word n-gram length of the repetition check")
    max_ngram_repeats: int = option(4, "most times one word n-gram may occur in a turn (more: a loop)")
    max_restatement: float = option(
        0.8, "word 4-gram Jaccard similarity of a turn to the one before, above which it restates"
    )
    answer_tail_chars: int = option(300, "most characters allowed after the final turn's boxed answer")

    def __post_init__(self) -> None:
        if unknown := [f for f in self.filters if f not in FILTER_NAMES]:
            raise ValueError(f"filters: unknown {unknown}; known: {list(FILTER_NAMES)}")
        for b in self.required_behaviours or []:
            if b not in BEHAVIOURS:
                raise ValueError(f"required_behaviours: {b!r} is not one of {list(BEHAVIOURS)}")
        if not 0 <= self.min_tokens <= self.max_tokens:
            raise ValueError(f"min_tokens/max_tokens: need 0 <= min <= max, got {self.min_tokens}, {self.max_tokens}")
        for name in ("repeat_ngram", "max_ngram_repeats", "answer_tail_chars"):
            if getattr(self, name) < (0 if name == "answer_tail_chars" else 1):
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.max_restatement <= 1:
            raise ValueError(f"max_restatement must be in (0, 1], got {self.max_restatement}")


def final_correct(d: Dialogue, cfg: FilterConfig) -> str | None:
    if not d.correct[-1]:
        return f"final answer {d.answers[-1]!r} is not {d.reference!r}"
    return None


def one_final_answer(d: Dialogue, cfg: FilterConfig) -> str | None:
    text = d.turns[-1].text.rstrip()
    boxes = [b for b in boxed_spans(text) if b[2].strip()]
    if len({b[2].strip() for b in boxes}) != 1:
        return f"last turn states {len(boxes)} boxed answers ({len({b[2].strip() for b in boxes})} distinct), not one"
    if len(text) - boxes[-1][1] > cfg.answer_tail_chars:
        return f"{len(text) - boxes[-1][1]} characters follow the final answer (> {cfg.answer_tail_chars})"
    return None


def not_truncated(d: Dialogue, cfg: FilterConfig) -> str | None:
    cut = [i + 1 for i, t in enumerate(d.turns) if t.finish_reason == "length"]
    return f"turn(s) {cut} hit the token limit" if cut else None


def behaviours(d: Dialogue, cfg: FilterConfig) -> str | None:
    """Each re-examination turn shows its behaviours; a one-turn sample (Phase 2) shows ``required_behaviours``.

    A turn the LLM judge answered for is judged by its verdict; any other by the cue detector.
    """
    first = 2 if len(d.turns) > 1 else 1
    for i, turn in enumerate(d.examined_turns, start=first):
        wanted = set(cfg.required_behaviours) if cfg.required_behaviours is not None else {turn.behaviour} - {None}
        shown, by = (turn.judged, "judge") if turn.judged is not None else (behaviours_present(turn.text), "cues")
        if missing := sorted(wanted - shown):
            return f"turn {i} shows no {', '.join(missing)} ({by})"
    return None


def no_repetition(d: Dialogue, cfg: FilterConfig) -> str | None:
    for i, turn in enumerate(d.turns, start=1):
        words = turn.text.split()
        grams = Counter(tuple(words[j : j + cfg.repeat_ngram]) for j in range(len(words) - cfg.repeat_ngram + 1))
        if grams and (top := grams.most_common(1)[0])[1] > cfg.max_ngram_repeats:
            return f"turn {i} repeats {' '.join(top[0])[:60]!r} {top[1]} times"
    return None


def length(d: Dialogue, cfg: FilterConfig) -> str | None:
    if not cfg.min_tokens <= d.tokens <= cfg.max_tokens:
        return f"{d.tokens} tokens, outside [{cfg.min_tokens}, {cfg.max_tokens}]"
    return None


def not_restatement(d: Dialogue, cfg: FilterConfig) -> str | None:
    for i in range(1, len(d.turns)):
        sim = _jaccard(d.turns[i - 1].text, d.turns[i].text)
        if sim > cfg.max_restatement:
            return f"turn {i + 1} restates turn {i} (4-gram similarity {sim:.2f} > {cfg.max_restatement})"
    return None


def no_flip(d: Dialogue, cfg: FilterConfig) -> str | None:
    for i in range(1, len(d.correct)):
        if any(d.correct[:i]) and not d.correct[i]:
            return f"right answer turned wrong at turn {i + 1}"
    return None


FILTERS: dict[str, Callable[[Dialogue, FilterConfig], str | None]] = {name: globals()[name] for name in FILTER_NAMES}


def _rate(kept: int, total: int) -> float | None:
    return round(kept / total, 4) if total else None


def _jaccard(a: str, b: str, n: int = 4) -> float:
    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+|[^\w\s]", text.lower())
        return {tuple(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}

    ga, gb = grams(a), grams(b)
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0


def check(d: Dialogue, cfg: FilterConfig) -> list[str]:
    """``"filter: reason"`` for every enabled rule ``d`` fails, in ``FILTERS`` order; empty: keep it."""
    return [f"{name}: {why}" for name in cfg.filters if (why := FILTERS[name](d, cfg)) is not None]


def acceptance(rows: Iterable[tuple[Sequence[str], Sequence[str]]], names: Sequence[str]) -> dict[str, Any]:
    """Acceptance rates from ``(template ids, failed-rule reasons)`` per sample.

    Returns:
        ``samples``, ``kept``, ``rate``; ``by_filter``: each rule's pass rate (over all samples, rules
        judged independently); ``by_template``: samples, kept and rate of the samples using each template.
    """
    total, kept, fails = 0, 0, Counter()
    per_template: dict[str, list[int]] = {}
    for templates, reasons in rows:
        total += 1
        ok = not reasons
        kept += ok
        fails.update({r.split(":", 1)[0] for r in reasons})
        for t in set(templates):
            per_template.setdefault(t, [0, 0])
            per_template[t][0] += 1
            per_template[t][1] += ok
    by_template = {t: {"samples": n, "kept": k, "rate": _rate(k, n)} for t, (n, k) in sorted(per_template.items())}
    return {"samples": total, "kept": kept, "rate": _rate(kept, total),
            "by_filter": {n: _rate(total - fails[n], total) for n in names}, "by_template": by_template}  # fmt: skip
