"""The Leaderboard tab: zoo's leaderboard (:mod:`zoo.leaderboard`) as a sortable table.

The table is the one ``zoo leaderboard`` prints and README.md holds, rendered from the registry
when the page is built: one row per encoder and evaluation set, with the random-init baselines.
Metric columns are numbers (click a header to sort by it; empty where not measured), and a
filter box narrows the rows. The named API endpoint ``/leaderboard`` returns the rows with, for
each number, how it was measured and the command that reproduces it.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from zoo import leaderboard

__all__ = ["HEADERS", "leaderboard_rows", "leaderboard_tab", "table"]

#: Columns of the tab: the row's identity, every metric column, then the training budget.
HEADERS = [
    "encoder",
    "method",
    "architecture",
    "evaluated on",
    *(c.header for c in leaderboard.COLUMNS),
    "epochs",
    "minutes",
]
DATATYPES = ["str"] * 4 + ["number"] * (len(leaderboard.COLUMNS) + 2)

INTRO = (
    "Every encoder with measured numbers, from the registry (the table `zoo leaderboard` prints and"
    " README.md holds). Top-1 accuracy in % for kNN (weighted, k=20 T=0.07 and k=200 T=0.1), the"
    " linear probe and fine-tuning on 1% / 10% of the labels; k-means NMI x100; img/s where measured."
    " Numbers are comparable within one evaluation set only. **Click a column header to sort by it.**"
    " Each model card gives the exact command of each number; `zoo leaderboard --format json` lists"
    " them all."
)


def table(rows: list[leaderboard.Row] | None = None) -> list[list[Any]]:
    """The tab's rows: text identity cells, numbers (None where not measured) for the rest."""
    out = []
    for r in leaderboard.rows() if rows is None else rows:
        name = f"{r.name.replace('`', '')} (random init)" if r.baseline else r.name
        data = leaderboard.DATA_NAMES.get(r.dataset, r.dataset)
        values = [r.value(c.key) for c in leaderboard.COLUMNS]
        minutes = None if r.minutes is None else round(r.minutes, 1)
        out.append([name, r.method, r.arch, data, *values, r.epochs, minutes])
    return out


def leaderboard_rows() -> list[dict[str, Any]]:
    """Every leaderboard row with each number's value, how it was measured and its command."""
    rows: list[dict[str, Any]] = json.loads(leaderboard.render("json"))
    return rows


def leaderboard_tab(page: Any = None) -> dict[str, Any]:
    """Build the tab (inside ``gr.Blocks``); ``page`` is unused: the table needs no model."""
    with gr.Tab("Leaderboard", elem_id="tab-leaderboard"):
        gr.Markdown(INTRO, elem_id="leaderboard-intro")
        board = gr.Dataframe(
            value=table(),
            headers=HEADERS,
            datatype=DATATYPES,
            interactive=False,
            show_search="filter",
            pinned_columns=1,
            wrap=True,
            max_height=720,
            label="Leaderboard (click a header to sort)",
            elem_id="leaderboard",
        )
    gr.api(leaderboard_rows, api_name="leaderboard")
    return {"board": board}
