"""Turn-2+ templates of the Dual-Phase dialogue: a pool in YAML, several per behaviour, each with an id.

The paper (arXiv 2601.05616) writes its re-examination prompts by hand and does not publish them; the
default pool (``templates.yaml`` next to this module) is this project's, written after the behaviour
taxonomy of Gandhi et al. (arXiv 2503.01307) and the reflection prompts of SCoRe / Marco-o1. A user
extends or replaces it with their own YAML file of the same shape::

    templates:
      - id: verify-substitute          # unique; recorded in every sample that used it
        behaviour: verification        # one of BEHAVIOURS
        text: "Check {answer} by ..."  # placeholders: {answer} (the last turn's final answer), {problem}

Which template a turn gets is a pure function of (problem id, sample index, turn), so a rerun or a
resumed run asks the same questions and acceptance per template is comparable across runs.
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

__all__ = ["BEHAVIOURS", "DEFAULT_TEMPLATES", "Template", "TemplatePool", "load_templates"]

BEHAVIOURS = ("verification", "backtracking", "subgoal_setting", "backward_chaining")
"""The four reasoning behaviours of Gandhi et al. (2025) that the dialogue elicits."""

DEFAULT_TEMPLATES = Path(__file__).with_name("templates.yaml")
PLACEHOLDERS = frozenset({"answer", "problem"})


@dataclass(frozen=True)
class Template:
    """One re-examination prompt: ``id``, the ``behaviour`` it asks for, and its ``text`` (a format string)."""

    id: str
    behaviour: str
    text: str

    def render(self, answer: str | None, problem: str) -> str:
        """The user turn: the text with ``{answer}`` (``"no final answer"`` when none) and ``{problem}``."""
        return self.text.format(answer=answer if answer else "no final answer", problem=problem).strip()


class TemplatePool:
    """The templates of one run, with the deterministic choice of a template per turn.

    Args:
        templates: the pool (ids unique).
        behaviours: use only templates of these behaviours (None: all).
    """

    def __init__(self, templates: Sequence[Template], behaviours: Sequence[str] | None = None) -> None:
        chosen = [t for t in templates if behaviours is None or t.behaviour in behaviours]
        if not chosen:
            raise ValueError(f"templates: none left for behaviours {list(behaviours or [])}")
        self.templates = tuple(chosen)
        self.by_id = {t.id: t for t in chosen}

    def choose(self, problem_id: str, sample: int, turn: int, exclude: Sequence[str] = ()) -> Template:
        """The template for ``turn`` (2, 3, ...) of sample ``sample`` of ``problem_id``; avoids ids in ``exclude``.

        Turns of one dialogue rotate through the behaviours: a later turn asks for another behaviour
        than the earlier ones while the pool has one.
        """
        pool = [t for t in self.templates if t.id not in exclude] or list(self.templates)
        used = {self.by_id[i].behaviour for i in exclude if i in self.by_id}
        fresh = [t for t in pool if t.behaviour not in used] or pool
        digest = hashlib.blake2b(f"{problem_id}\x00{sample}\x00{turn}".encode(), digest_size=8).digest()
        return fresh[int.from_bytes(digest, "big") % len(fresh)]


def load_templates(path: str | Path | None = None, behaviours: Sequence[str] | None = None) -> TemplatePool:
    """Read a template YAML (None: the bundled pool) into a :class:`TemplatePool`.

    Raises:
        ValueError: unreadable file, a missing key, an unknown behaviour or placeholder, or a repeated id;
            the message names the template.
    """
    path = Path(path) if path else DEFAULT_TEMPLATES
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"templates: cannot read {path}: {e}") from e
    items = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ValueError(f"templates: {path} must hold a non-empty list under 'templates'")
    templates = [_template(item, i, path) for i, item in enumerate(items)]
    ids = [t.id for t in templates]
    if dup := sorted({i for i in ids if ids.count(i) > 1}):
        raise ValueError(f"templates: repeated id(s) {dup} in {path}")
    for b in behaviours or ():
        if b not in BEHAVIOURS:
            raise ValueError(f"behaviours: {b!r} is not one of {list(BEHAVIOURS)}")
    return TemplatePool(templates, behaviours)


def _template(item: object, index: int, path: Path) -> Template:
    where = f"templates: entry {index} of {path}"
    if not isinstance(item, dict) or set(item) != {"id", "behaviour", "text"}:
        raise ValueError(f"{where} must have exactly the keys id, behaviour, text; got {item!r}"[:300])
    tid, behaviour, text = (str(item[k]).strip() for k in ("id", "behaviour", "text"))
    if not tid or not text:
        raise ValueError(f"{where}: id and text must not be empty")
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"{where} ({tid}): behaviour {behaviour!r} is not one of {list(BEHAVIOURS)}")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as e:
        raise ValueError(f"{where} ({tid}): bad format string: {e}") from e
    if unknown := sorted(fields - PLACEHOLDERS):
        raise ValueError(f"{where} ({tid}): unknown placeholder(s) {unknown}; allowed: {sorted(PLACEHOLDERS)}")
    return Template(tid, behaviour, text)
