"""The interactive run report: one self-contained HTML file (no server, no network) built from the Parquet outputs.

``report/report.html`` sits next to ``report.md``. It embeds, as JSON in the page:

* per round, the ``trees`` table of the generation job (one row per problem: ``problem_id``, ``stage``,
  ``outcome``, ``num_pairs``, ``trees_json`` with every explored tree, see ``SearchTree.to_dict``) and the
  ``pairs`` table (``PAIR_SCHEMA``: ``prompt``/``chosen``/``rejected``, ``stage``, ``level``, scores);
* the report's figures, as ``data:`` URIs.

In the page a reader filters problems by stage and outcome, opens a problem's search trees, clicks a node to
read its step text, PRM score, reward and kept/pruned status and the pairs that contain it, and reads each
pair's chosen and rejected sides side by side. The viewer (``report_viewer.js``/``.css``, inlined) builds the
page with DOM calls and ``textContent`` only, so model text is never parsed as HTML.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sphere_ray.pairs import PAIR_SCHEMA

__all__ = ["MAX_PROBLEMS", "PAIR_COLUMNS", "build_html", "round_data"]

MAX_PROBLEMS = 400
"""Problems embedded per round (the first by id); a run with more says how many were left out."""

PAIR_COLUMNS = tuple(f.name for f in PAIR_SCHEMA if f.name not in ("config_hash", "prompt_kind"))
"""The ``pairs`` columns the page shows (every ``PAIR_SCHEMA`` column but the bookkeeping ones)."""


def round_data(k: int, policy: str, trees: Sequence[dict[str, Any]], pairs: Sequence[dict[str, Any]]) -> dict:
    """One round's embedded data from its ``trees`` rows and ``pairs`` rows (dicts of those tables' columns)."""
    ordered = sorted(trees, key=lambda row: str(row["problem_id"]))
    kept = ordered[:MAX_PROBLEMS]
    ids = {row["problem_id"] for row in kept}
    problems = [
        {"id": row["problem_id"], "stage": int(row["stage"]), "outcome": row["outcome"],
         "num_pairs": int(row["num_pairs"]), "trees": json.loads(row["trees_json"])}
        for row in kept
    ]  # fmt: skip
    shown = [{c: p[c] for c in PAIR_COLUMNS} for p in pairs if p["problem_id"] in ids]
    return {"round": k, "policy": policy, "problems": problems, "pairs": shown, "left_out": len(ordered) - len(kept)}


def _figure(path: Path) -> dict[str, str]:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return {"name": path.stem, "src": f"data:image/png;base64,{data}"}


def build_html(title: str, rounds: Sequence[dict], figures: Iterable[Path] = ()) -> str:
    """The whole page: viewer, styles and data inlined (``rounds`` from :func:`round_data`)."""
    from sphere_ray.search.types import STEP_SEPARATOR

    data = {"title": title, "rounds": list(rounds), "figures": [_figure(p) for p in figures],
            "step_separator": STEP_SEPARATOR}  # fmt: skip
    # "</" cannot end the script element early; U+2028/9 are escaped by ensure_ascii
    payload = json.dumps(data, ensure_ascii=True, default=str).replace("</", "<\\/")
    assets = resources.files("sphere_ray.pipeline")
    css = assets.joinpath("report_viewer.css").read_text()
    js = assets.joinpath("report_viewer.js").read_text()
    esc = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc}</title>\n'
        f'<style>{css}</style></head>\n<body><div id="app"></div>\n'
        f'<script type="application/json" id="report-data">{payload}</script>\n<script>{js}</script>\n'
        "</body></html>\n"
    )
