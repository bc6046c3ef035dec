"""The names the demo shows for a gallery's classes.

A labelled gallery is an ImageFolder: each image's label is its first sub-folder, often an
id (``n01440764``) rather than a name a visitor reads ("tench"). The demo keeps those folder
labels for everything it computes (index, kNN vote, NMI) and shows names instead, taken from

1. a ``classes.txt`` file at the top of the gallery folder: one class per line, the folder
   name, a tab (or spaces), then the name to show; blank lines and lines starting with ``#``
   are ignored; folders it does not list keep their folder name. For example::

       # folder	name shown
       n01440764	tench
       golf_balls	golf ball

2. else, when every folder is an ImageNet WordNet id (``n`` and 8 digits), the ImageNet-1k
   table bundled with zoo (``zoo/data/imagenet_classes.txt``, same format);
3. else the folder names themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import zoo

NAMES_FILE = "classes.txt"
IMAGENET_TABLE = Path(zoo.__file__).parent / "data" / "imagenet_classes.txt"
_WNID = re.compile(r"n\d{8}")


def read_names(path: Path) -> dict[str, str]:
    """``{folder: name}`` from a names file (format in the module docstring)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise zoo.ZooError(f"{path}: cannot read the class names file ({e})") from None
    names: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        folder, _, name = line.partition("\t") if "\t" in line else line.partition(" ")
        folder, name = folder.strip(), name.strip()
        if not folder or not name:
            raise zoo.ZooError(
                f"{path}, line {number}: expected a folder name, a tab and the class's name, got {line!r}"
            )
        names[folder] = name
    return names


def class_names(root: Path, labels: Iterable[str | None]) -> dict[str, str]:
    """``{folder label: name to show}`` for the gallery at ``root`` (empty: show labels as they are)."""
    folders = {label for label in labels if label is not None}
    if (root / NAMES_FILE).is_file():
        names = read_names(root / NAMES_FILE)
    elif folders and all(_WNID.fullmatch(f) for f in folders):
        names = read_names(IMAGENET_TABLE)
    else:
        return {}
    return {f: names[f] for f in folders if f in names}
