"""A cheap detector of the four reasoning behaviours in a text: cue phrases counted per behaviour.

Cue lists follow the behaviour definitions of Gandhi et al. (arXiv 2503.01307, their Appendix): a
phrase that, in a math solution, almost always marks the behaviour. Counting cues is fast and
explainable, and it over-counts (a "first," that starts no subgoal) and under-counts (a behaviour in
other words); the optional LLM judge (a Serve app) is the precise detector.
"""

from __future__ import annotations

import re

from sphere_ray.dialogue.templates import BEHAVIOURS

__all__ = ["CUES", "behaviour_counts", "behaviours_present"]

CUES: dict[str, tuple[str, ...]] = {
    "verification": (
        r"let(?:'s| me| us) (?:double[- ])?(?:check|verify)", r"\bverif(?:y|ying|ied|ication)\b", r"\bdouble[- ]check",
        r"\bsubstitut\w* (?:\w+ ){0,3}back\b", r"\bplug\w* (?:\w+ ){0,3}back\b", r"\bsanity check", r"\bchecks? out\b",
        r"\bconfirm(?:s|ed|ing)? (?:that|the)\b",
    ),
    "backtracking": (
        r"\bwait\b", r"\bi made (?:a|an) (?:mistake|error)", r"\b(?:that|this) (?:is|was) (?:wrong|incorrect)",
        r"\blet me (?:re-?consider|re-?think|redo|start over|go back)", r"\bgo(?:ing)? back to\b",
        r"\binstead,? (?:let|we|i)\b", r"\bon second thought", r"\bactually,",
    ),
    "subgoal_setting": (
        r"\bfirst,? (?:we|i|let)", r"\bstep \d+\b", r"\bnext,? (?:we|i|let)", r"\bsub-?goals?\b",
        r"\bwe (?:need|have) to (?:find|compute|determine)\b", r"\bto (?:do|solve) this,",
        r"\bthen,? we (?:can|need)\b",
    ),
    "backward_chaining": (
        r"\bwork(?:ing)? backwards?\b", r"\bbackwards? from\b", r"\bstart(?:ing)? from the (?:goal|answer|end)\b",
        r"\bfor (?:this|that) to (?:be true|hold)\b", r"\bwe would need\b",
        r"\bwhat (?:must|would) (?:be|have to be)\b",
    ),
}  # fmt: skip
_PATTERNS = {b: re.compile("|".join(f"(?:{c})" for c in cues), re.IGNORECASE) for b, cues in CUES.items()}


def behaviour_counts(text: str) -> dict[str, int]:
    """Cue matches per behaviour in ``text`` (every behaviour of ``BEHAVIOURS`` is a key)."""
    return {b: len(_PATTERNS[b].findall(text)) for b in BEHAVIOURS}


def behaviours_present(text: str) -> set[str]:
    """The behaviours with at least one cue in ``text``."""
    return {b for b, n in behaviour_counts(text).items() if n}
