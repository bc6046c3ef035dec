"""The one progress bar of zoo's long loops: embedding, indexing, training and fine-tuning.

tqdm's own ``disable`` gives a bar that draws nothing and answers ``update``,
``set_postfix`` and ``close``, so callers never branch on whether a bar is shown (the loops
had each carried a no-op stand-in class before).
"""

from __future__ import annotations

from tqdm.auto import tqdm

__all__ = ["progress_bar"]


def progress_bar(total: int, desc: str, unit: str, *, enabled: bool = True, initial: int = 0) -> tqdm:
    """A bar over ``total`` units, already at ``initial`` (a resumed loop), drawn only when
    ``enabled`` (``False`` for ``progress=False`` and for every rank but 0 of a distributed run)."""
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, disable=not enabled)
