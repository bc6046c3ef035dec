"""The Leaderboard tab: zoo's leaderboard (:mod:`zoo.leaderboard`) as a sortable table.

The table is the one ``zoo leaderboard`` prints and README.md holds, rendered from the registry
when the page is built: one row per encoder and evaluation set, with the random-init baselines.
Metric columns are numbers, sorted as numbers from each column's menu (empty where not
measured; fine-tuning and img/s columns appear once some encoder has them), and a filter box
narrows the rows. The named API endpoint ``/leaderboard`` returns the rows with, for
each number, how it was measured and the command that reproduces it.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from zoo import leaderboard

__all__ = ["columns", "leaderboard_rows", "leaderboard_tab", "table"]

_IDENTITY = ["encoder", "method", "architecture", "evaluated on"]
_BUDGET = ["epochs", "minutes"]

INTRO = (
    "Every encoder with measured numbers, from the registry (the table `zoo leaderboard` prints and"
    " README.md holds). Top-1 accuracy in % for kNN (weighted, k=20 T=0.07 and k=200 T=0.1), the"
    " linear probe and fine-tuning on 1% / 10% of the labels; k-means NMI x100; img/s where measured."
    " Numbers are comparable within one evaluation set only. **To sort by a column, open its ⋮ menu**"
    " (type in Filter to narrow the rows). Each model card gives the exact command of each number;"
    " `zoo leaderboard --format json` lists them all."
)


def columns(rows: list[leaderboard.Row]) -> list[leaderboard.Column]:
    """The metric columns some row has a number in (fine-tuning and img/s appear once measured)."""
    return [c for c in leaderboard.COLUMNS if any(r.value(c.key) is not None for r in rows)]


def table(rows: list[leaderboard.Row] | None = None) -> tuple[list[str], list[str], list[list[Any]]]:
    """Headers, datatypes and rows of the tab: text identity cells, numbers (None where not measured)."""
    rows = leaderboard.rows() if rows is None else rows
    shown = columns(rows)
    headers = [*_IDENTITY, *(c.header for c in shown), *_BUDGET]
    datatypes = ["str"] * len(_IDENTITY) + ["number"] * (len(shown) + len(_BUDGET))
    data = []
    for r in rows:
        name = r.name.replace("`", "")  # a baseline's label says "random init" itself
        identity = [name, leaderboard.method_label(r), r.arch, leaderboard.data_label(r)]
        minutes = None if r.minutes is None else round(r.minutes, 1)
        data.append([*identity, *(r.value(c.key) for c in shown), r.epochs, minutes])
    return headers, datatypes, data


def leaderboard_rows() -> list[dict[str, Any]]:
    """Every leaderboard row with each number's value, how it was measured and its command."""
    rows: list[dict[str, Any]] = json.loads(leaderboard.render("json"))
    return rows


def leaderboard_tab(page: Any = None) -> dict[str, Any]:
    """Build the tab (inside ``gr.Blocks``); ``page`` is unused: the table needs no model."""
    with gr.Tab("Leaderboard", elem_id="tab-leaderboard"):
        gr.Markdown(INTRO, elem_id="leaderboard-intro")
        headers, datatypes, data = table()
        board = gr.Dataframe(
            value=data,
            headers=headers,
            datatype=datatypes,
            interactive=False,
            show_search="filter",
            max_height=720,
            label="Leaderboard (sort from a column's ⋮ menu)",
            elem_id="leaderboard",
        )
    gr.api(leaderboard_rows, api_name="leaderboard")
    return {"board": board}
