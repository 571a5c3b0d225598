"""Dual-Phase self-evolved long-CoT SFT (arXiv 2601.05616): the dialogue, its rule filters, Phase 2's sampler.

* :mod:`.templates` — the re-examination template pool (YAML, one id per template);
* :mod:`.behaviours` — the cheap cue detector of the four reasoning behaviours;
* :mod:`.dialogue` — the multi-turn dialogue of one problem over a :class:`~.dialogue.ChatPolicy`;
* :mod:`.sample` — one graded dialogue sample and its TRL formats (merged prompt-completion, conversational);
* :mod:`.filters` — the named rule filters and acceptance rates;
* :mod:`.allocation` — difficulty-aware rejection sampling (uniform, prop2diff, band) under a token budget.

Pure: no Ray; models come in as protocols.
"""
