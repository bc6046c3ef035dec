"""Converters from upstream checkpoint layouts to zoo architectures.

A converter is a pure function ``convert(state_dict, arch) -> state_dict`` that maps every
backbone key of one upstream container format onto the architecture's own keys, drops only
the head keys that format is known to carry, and raises :class:`~zoo.errors.ConversionError`
listing anything else. ``matches(state_dict)`` tells whether a checkpoint looks like the
format, for ``--from auto``. Each format lives in its own module and registers itself here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from zoo.errors import ConversionError

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Converter:
    name: str
    convert: Callable[[Mapping[str, torch.Tensor], str], StateDict]
    matches: Callable[[Mapping[str, torch.Tensor]], bool]
    archs: tuple[str, ...]
    description: str


_CONVERTERS: dict[str, Converter] = {}


def register_converter(converter: Converter) -> Converter:
    if converter.name in _CONVERTERS:
        raise ValueError(f"converter {converter.name!r} is registered twice")
    _CONVERTERS[converter.name] = converter
    return converter


def list_formats() -> list[str]:
    return sorted(_CONVERTERS)


def get_converter(name: str) -> Converter:
    try:
        return _CONVERTERS[name]
    except KeyError:
        raise ConversionError(
            f"unknown checkpoint format {name!r}; known formats: {', '.join(list_formats())}"
        ) from None


def detect_format(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The one registered format whose ``matches`` accepts ``state_dict``."""
    hits = [c.name for c in _CONVERTERS.values() if c.matches(state_dict)]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        sample = ", ".join(list(state_dict)[:5])
        raise ConversionError(
            f"no known checkpoint format matches these keys (first: {sample});"
            f" pass the format explicitly, one of: {', '.join(list_formats())}"
        )
    raise ConversionError(f"ambiguous checkpoint format, candidates: {', '.join(hits)}; pass one explicitly")


def check_complete(
    mapped: StateDict, leftovers: list[str], fmt: str, expected: Mapping[str, torch.Size] | None = None
) -> StateDict:
    """Fail with every unmapped key listed, so nothing is silently dropped."""
    if leftovers:
        shown = ", ".join(sorted(leftovers)[:20])
        more = f" (+{len(leftovers) - 20} more)" if len(leftovers) > 20 else ""
        raise ConversionError(f"{fmt}: {len(leftovers)} checkpoint keys are not mapped: {shown}{more}")
    if expected is not None:
        missing = sorted(set(expected) - set(mapped))
        if missing:
            raise ConversionError(
                f"{fmt}: the checkpoint lacks {len(missing)} keys: {', '.join(missing[:20])}"
            )
    return mapped


from zoo.convert import efficientnet_lite  # noqa: E402  (registers itself)

__all__ = [
    "Converter",
    "StateDict",
    "check_complete",
    "detect_format",
    "efficientnet_lite",
    "get_converter",
    "list_formats",
    "register_converter",
]
