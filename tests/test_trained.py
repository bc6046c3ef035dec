"""The encoders zoo trained itself: weights installed with the project, verified, small, and
as good as their cards say."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.evaluate import cluster_scores, evaluate
from zoo.folder import read_safetensors
from zoo.loading import _package_file

ROOT = Path(__file__).resolve().parents[1]
TRAINED = [n for n in zoo.list_models() if zoo.model_info(n).training is not None]
WEIGHTS = ROOT / "zoo" / "weights"


def test_every_method_the_issue_asks_for_is_published() -> None:
    cifar = {zoo.model_info(n).method for n in TRAINED if zoo.model_info(n).dataset == "cifar10"}
    assert cifar >= {"simclr", "moco-v2", "byol", "simsiam", "swav", "barlowtwins", "dino"}
    assert any(zoo.model_info(n).dataset == "imagenette" for n in TRAINED)


def test_only_runs_cut_short_point_to_their_recipes_longer_schedule() -> None:
    import yaml

    for name in TRAINED:
        entry = zoo.model_info(name)
        recipe = yaml.safe_load((ROOT / entry.training.recipe).read_text(encoding="utf-8"))
        cut = recipe["train"]["epochs"] > entry.training.epochs  # not a run lengthened on resume
        assert ("Without the `train.epochs` override" in entry.limitations) == cut, name


def test_the_registry_reads_a_recipes_length_without_parsing_yaml() -> None:
    import yaml

    from zoo.pretrained import _train_epochs

    for path in sorted((ROOT / "training" / "recipes").glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert _train_epochs(text) == yaml.safe_load(text)["train"].get("epochs"), path.name
    nested = "train:  # schedule\n  warmup:\n    epochs: 5\n\n  # the length\n  epochs: 200 # x\nrun:\n"
    assert _train_epochs(nested) == 200
    assert _train_epochs("train:\n  batch_size: 5\nrun:\n  epochs: 3\n") is None  # another section's
    assert _train_epochs("train:\n" + "  # c\n" * 100_000 + "run:\n") is None  # linear, not backtracking


def test_shipped_weights_are_small_and_all_registered() -> None:
    files = sorted(WEIGHTS.glob("*.safetensors"))
    # The project's budget for shipped weights: about 150 MB, raised to 155 MB for the half-width
    # CIFAR-10 flagship (5.6 MB in fp16; 152.4 MB in all).
    assert sum(f.stat().st_size for f in files) < 155 * 10**6
    assert sorted(f.stem for f in files) == sorted(TRAINED), "every shipped file has its entry, and back"


@pytest.mark.parametrize("name", TRAINED)
def test_trained_entry_loads_its_verified_installed_weights(name: str) -> None:
    entry = zoo.model_info(name)
    assert entry.weights.file == f"zoo:weights/{name}.safetensors" and len(entry.weights.sha256) == 64
    assert _package_file(entry.weights.file) == WEIGHTS / f"{name}.safetensors"
    tensors, _ = read_safetensors(WEIGHTS / f"{name}.safetensors")
    # A layer's weight matrix or kernel (a ResNet's convolutions, a ViT's patch embedding and
    # linear layers; every tensor of a file shares one precision).
    weight = next(v for _, v in sorted(tensors.items()) if v.is_floating_point() and v.dim() >= 2)
    precision = "fp16" if weight.dtype == torch.float16 else "fp32"
    # The four numbers ship measures on the entry's own dataset say which copy they measured.
    shipped = ("knn-k20", "knn-k200", "linear", "nmi")
    own = [m for m in entry.measured if m.dataset.startswith(entry.dataset) and m.protocol in shipped]
    assert sorted(m.protocol for m in own) == sorted(shipped)
    assert all(f"shipped {precision} weights" in m.how for m in own), "cards say the precision"
    encoder = zoo.load(name)
    assert encoder.entry == entry
    # Each number's command: zoo eval; a pretext task's, the training run; a per-block probe's, the probe.
    for m in entry.measured:
        if m.protocol.startswith("task-"):
            # Measured during training, or on the finished run (IIC's clustering accuracy).
            assert m.source == entry.training.command or m.source.startswith(
                f"{entry.training.command} && python"
            )
        elif m.protocol.startswith("linear-"):
            assert m.source.startswith(f"python -m zoo.training.pretext.probe {name} ../shared/data/")
        else:
            assert m.source.startswith(f"zoo eval {name} --data ../shared/data/"), m.source


# The two whose check costs over a minute on one core: the DCGAN trunk's 7,168-d features make
# k-means slow, the ViT embeds slowly; the slow run keeps them (their training tests and the
# full-split card check cover them too).
_WIDE = {"dcgan-disc-cifar10", "mae-vitt4-cifar10"}
# Known to miss the bar, kept visible: strict, so passing it one day fails the run until removed.
_BELOW_BAR = {
    "dim-r18q-cifar10": "one-view Deep InfoMax clusters 4.8 NMI points above its random init on the"
    " full test split (10.14 against 5.34), under this check's 5; it ships on kNN (+7.4) and linear"
    " probe (+9.2) gains (training/README.md, session 15)",
    "cpc-v2-r18q-cifar10.grid7x8": "CPC v2 read on its patch grid clusters 4.2 NMI points above the same"
    " read-out at random init on the full test split (11.96 against 7.78: averaging 49 patches already"
    " lifts random features from 5.34), under this check's 5; its kNN (+10.3 / +8.6) and linear (+9.7)"
    " gains are the largest of its read-outs, and .whole meets the bar (training/README.md, session 17)",
}


def _clustering_case(name: str):
    if name in _WIDE:
        return pytest.param(name, marks=pytest.mark.slow)
    if name in _BELOW_BAR:
        return pytest.param(name, marks=pytest.mark.xfail(reason=_BELOW_BAR[name], strict=True))
    return name


@pytest.mark.parametrize(
    "name", [_clustering_case(n) for n in TRAINED if zoo.model_info(n).dataset == "cifar10"]
)
def test_trained_cifar_encoder_clusters_better_than_its_random_initialisation(
    name: str, data_root: Path, pick_images
) -> None:
    """k-means NMI on 2,000 real CIFAR-10 test images: training has taught the encoder the
    classes' structure, which its random initialisation lacks (NMI ~6 here; kNN separates the
    two less sharply, since random 32 px conv features already reach ~33% kNN top-1)."""
    images, labels = pick_images(data_root / "cifar10" / "test", 200)
    trained = cluster_scores(zoo.load(name).embed(images, backend="torch"), np.array(labels), num_classes=10)
    entry = zoo.model_info(name)
    # Most entries share one network and preprocessing: their random initialisation is measured once.
    network = (entry.arch, repr(entry.arch_kwargs), entry.preprocess)
    untrained = _random_init_nmi(name, network, images, labels)
    assert trained["nmi"] >= untrained + 5, (trained["nmi"], untrained)


_RANDOM_INIT_NMI: dict[tuple, float] = {}


def _random_init_nmi(name: str, key: tuple, images: list[Path], labels: list[int]) -> float:
    if key not in _RANDOM_INIT_NMI:
        torch.manual_seed(0)
        features = zoo.load(name, pretrained=False).embed(images, backend="torch")
        _RANDOM_INIT_NMI[key] = cluster_scores(features, np.array(labels), num_classes=10)["nmi"]
    return _RANDOM_INIT_NMI[key]


@pytest.mark.slow
@pytest.mark.parametrize("name", TRAINED)
def test_card_numbers_are_what_zoo_eval_measures(name: str, data_root: Path) -> None:
    """Each recorded number, remeasured on the full split with the protocol of its command."""
    entry = zoo.model_info(name)
    for m in entry.measured:
        flags = m.source.split()
        data = data_root / Path(flags[flags.index("--data") + 1]).name
        if m.protocol.startswith("knn"):
            k = int(flags[flags.index("-k") + 1])
            t = float(flags[flags.index("--temperature") + 1])
            value = evaluate(name, data, k=k, temperature=t)["top1"]
        elif m.protocol == "linear":
            value = evaluate(name, data, protocol="linear")["top1"]
        else:
            value = evaluate(name, data, protocol="cluster")["nmi"]
        assert value == pytest.approx(m.value, abs=0.011), (m.protocol, value, m.value)


def test_the_demo_offers_the_installed_photo_encoders_first() -> None:
    from zoo.app.models import ModelPool

    offered = ModelPool(gallery=None).installed_photo_encoders()  # type: ignore[arg-type]
    photos = [n for n in TRAINED if zoo.model_info(n).dataset == "imagenette"]
    assert zoo.DEFAULT_MODEL in offered and set(photos) <= set(offered)
    # Best first: the supervised default (98 kNN on Imagenette val), then the photo flagship.
    assert offered[:2] == [zoo.DEFAULT_MODEL, "simclr-r18h-imagenette"]
    assert not any(zoo.model_info(n).dataset == "cifar10" for n in offered), "32 px encoders stay unticked"


# README's table of these encoders is the leaderboard, kept equal to the registry by
# tests/test_leaderboard.py (regenerate it with `zoo leaderboard --update README.md`).
