"""The Leaderboard tab: zoo's leaderboard (:mod:`zoo.leaderboard`) as a sortable table.

The table is the one ``zoo leaderboard`` prints and README.md holds, rendered from the registry
when the page is built: one row per encoder and evaluation set, with the random-init baselines.
Metric columns are numbers, sorted as numbers from each column's menu (empty where not
measured; fine-tuning and img/s columns appear once some encoder has them), and a filter box
narrows the rows. A choice of evaluation set above the table shows one set at a time (CIFAR-10
test first), because numbers compare only within one set and because the grid sorts cells
without a number (transfer rows have no NMI) to the top of an ascending sort. The named API
endpoint ``/leaderboard`` returns the rows with, for each number, how it was measured and the
command that reproduces it.
"""

from __future__ import annotations

import json
from typing import Any

import gradio as gr

from zoo import leaderboard

__all__ = ["ALL_SETS", "columns", "evaluation_sets", "leaderboard_rows", "leaderboard_tab", "table"]

_IDENTITY = ["encoder", "method", "architecture", "evaluated on"]
_BUDGET = ["epochs", "minutes"]

#: The evaluation-set choice that shows every row.
ALL_SETS = "all sets"

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


def evaluation_sets(rows: list[leaderboard.Row]) -> list[str]:
    """The "evaluated on" labels, own-dataset sets before transfer, each by its number of rows."""
    labels = [leaderboard.data_label(r) for r in rows]
    return sorted(set(labels), key=lambda s: (s.endswith("(transfer)"), -labels.count(s), s))


def table(
    rows: list[leaderboard.Row] | None = None, evaluated_on: str = ALL_SETS
) -> tuple[list[str], list[str], list[list[Any]]]:
    """Headers, datatypes and rows of the tab: text identity cells, numbers (None where not measured).

    ``evaluated_on`` keeps the rows of one evaluation set (a label of :func:`evaluation_sets`);
    its columns are those with a number in one of the kept rows.
    """
    rows = leaderboard.rows() if rows is None else rows
    if evaluated_on != ALL_SETS:
        known = evaluation_sets(rows)
        if evaluated_on not in known:
            raise ValueError(
                f"no leaderboard rows are evaluated on {evaluated_on!r}; choose one of {[*known, ALL_SETS]}"
            )
        rows = [r for r in rows if leaderboard.data_label(r) == evaluated_on]
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
        sets = [*evaluation_sets(leaderboard.rows()), ALL_SETS]
        chosen = gr.Radio(
            sets,
            value=sets[0],
            label="Evaluated on (numbers compare within one set)",
            elem_id="leaderboard-set",
        )
        headers, datatypes, data = table(evaluated_on=sets[0])
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

        def show(evaluated_on: str) -> Any:
            headers, datatypes, data = table(evaluated_on=evaluated_on)
            return gr.Dataframe(value=data, headers=headers, datatype=datatypes)

        chosen.change(show, chosen, board, api_name=False, queue=False)
    gr.api(leaderboard_rows, api_name="leaderboard")
    return {"board": board, "evaluated_on": chosen}
