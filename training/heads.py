"""Projection heads, predictors and prototypes, each with its paper's defaults.

:class:`ProjectionHead` builds an MLP from ``(in_dim, out_dim, norm, activation)`` blocks
(lightly's design); each method's head is a few-line subclass whose docstring quotes the
paper's description and whose defaults are the paper's. Small-scale recipes pass smaller
dimensions explicitly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
from torch import nn
from zoo.training.precision import full_precision

Block = tuple[int, int, nn.Module | None, nn.Module | None]


class ProjectionHead(nn.Module):
    """An MLP of ``blocks``: each ``(in_dim, out_dim, norm, activation)`` is a Linear layer,
    then the norm layer and the activation if given. The Linear has a bias only when no
    norm follows it (a bias before BatchNorm is cancelled by the mean subtraction)."""

    def __init__(self, blocks: Sequence[Block]) -> None:
        super().__init__()
        if not blocks:
            raise ValueError("a projection head needs at least one block")
        layers: list[nn.Module] = []
        for i, (in_dim, out_dim, norm, act) in enumerate(blocks):
            if in_dim < 1 or out_dim < 1:
                raise ValueError(f"block {i}: dimensions must be >= 1, got {in_dim} -> {out_dim}")
            layers.append(nn.Linear(in_dim, out_dim, bias=norm is None))
            if norm is not None:
                layers.append(norm)
            if act is not None:
                layers.append(act)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim)."""
        return self.layers(x)


def _mlp(dims: Sequence[int], *, batch_norm: bool, last_norm: nn.Module | None = None) -> list[Block]:
    """Blocks for ``dims[0] -> ... -> dims[-1]``: hidden layers with (BN +) ReLU, a bare
    last layer unless ``last_norm`` is given."""
    blocks: list[Block] = []
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        if last:
            blocks.append((dims[i], dims[i + 1], last_norm, None))
        else:
            norm = nn.BatchNorm1d(dims[i + 1]) if batch_norm else None
            blocks.append((dims[i], dims[i + 1], norm, nn.ReLU(inplace=True)))
    return blocks


class SimCLRProjectionHead(ProjectionHead):
    """SimCLR (Chen et al. 2020, sec. 2.1): "a MLP with one hidden layer to obtain
    z = g(h) = W2 ReLU(W1 h)", 2048 hidden, 128 out. SimCLR v2 adds BN and a third layer;
    ``batch_norm=True`` (default, as solo-learn and lightly) follows v2's BN."""

    def __init__(
        self,
        in_dim: int = 2048,
        hidden_dim: int = 2048,
        out_dim: int = 128,
        num_layers: int = 2,
        batch_norm: bool = True,
    ) -> None:
        super().__init__(_mlp([in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim], batch_norm=batch_norm))


class MoCoV2ProjectionHead(ProjectionHead):
    """MoCo v2 (Chen et al. 2020b): "replace the fc head in MoCo with a 2-layer MLP head
    (hidden layer 2048-d, with ReLU)", 128-d output, no BN."""

    def __init__(self, in_dim: int = 2048, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__(_mlp([in_dim, hidden_dim, out_dim], batch_norm=False))


class MoCoV3ProjectionHead(ProjectionHead):
    """MoCo v3 (Chen, Xie & He 2021, sec. 4): "The projection head is a 3-layer MLP ...
    The hidden layers of both MLPs are 4096-d and are with ReLU; the output layers of both
    MLPs are 256-d, without ReLU. ... all layers in both MLPs have BN", the last one without
    affine parameters (as their code's ``_build_mlp``).

    The defaults are the paper's text and their ViT code (``MoCo_ViT``: 3 layers). Their
    ResNet code (``MoCo_ResNet``) builds a 2-layer projector: ``num_layers=2``.
    ``last_bn=False`` drops the output BN (their ResNet predictor).
    """

    def __init__(
        self,
        in_dim: int = 2048,
        hidden_dim: int = 4096,
        out_dim: int = 256,
        num_layers: int = 3,
        last_bn: bool = True,
    ) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        last_norm = nn.BatchNorm1d(out_dim, affine=False) if last_bn else None
        super().__init__(_mlp(dims, batch_norm=True, last_norm=last_norm))
        if not last_bn:  # their _build_mlp: every Linear is bias-free, the bare output one too
            self.layers[-1] = nn.Linear(dims[-2], out_dim, bias=False)


class MoCoV3PredictionHead(MoCoV3ProjectionHead):
    """MoCo v3's predictor: "the prediction head is a 2-layer MLP", 4096 hidden, 256 out.
    Their ViT code ends it with BN (``last_bn=True``, the default); their ResNet code
    (``_build_mlp(2, dim, mlp_dim, dim, False)``) does not: ``last_bn=False``."""

    def __init__(
        self, in_dim: int = 256, hidden_dim: int = 4096, out_dim: int = 256, last_bn: bool = True
    ) -> None:
        super().__init__(in_dim, hidden_dim, out_dim, num_layers=2, last_bn=last_bn)


class BYOLProjectionHead(ProjectionHead):
    """BYOL (Grill et al. 2020, sec. 3.3): "a multi-layer perceptron (MLP) ... consisting
    in a linear layer with output size 4096 followed by batch normalization, rectified
    linear units (ReLU), and a final linear layer with output dimension 256"."""

    def __init__(self, in_dim: int = 2048, hidden_dim: int = 4096, out_dim: int = 256) -> None:
        super().__init__(_mlp([in_dim, hidden_dim, out_dim], batch_norm=True))


class BYOLPredictionHead(BYOLProjectionHead):
    """BYOL's predictor "q_theta uses the same architecture as g_theta" (256 -> 4096 -> 256)."""

    def __init__(self, in_dim: int = 256, hidden_dim: int = 4096, out_dim: int = 256) -> None:
        super().__init__(in_dim, hidden_dim, out_dim)


class SimSiamProjectionHead(ProjectionHead):
    """SimSiam (Chen & He 2021, sec. 4): "The projection MLP (in f) has BN applied to each
    fully-connected (fc) layer, including its output fc. Its output fc has no ReLU. The
    hidden fc is 2048-d. This MLP has 3 layers." """

    def __init__(self, in_dim: int = 2048, hidden_dim: int = 2048, out_dim: int = 2048) -> None:
        super().__init__(
            [
                (in_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)),
                (hidden_dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)),
                # Their code: the output BN has no affine parameters.
                (hidden_dim, out_dim, nn.BatchNorm1d(out_dim, affine=False), None),
            ]
        )


class SimSiamPredictionHead(ProjectionHead):
    """SimSiam's predictor: "The prediction MLP (h) has BN applied to its hidden fc layers.
    Its output fc does not have BN or ReLU. This MLP has 2 layers. The dimension of h's
    input and output (z and p) is d = 2048, and h's hidden layer's dimension is 512." """

    def __init__(self, in_dim: int = 2048, hidden_dim: int = 512, out_dim: int = 2048) -> None:
        super().__init__(_mlp([in_dim, hidden_dim, out_dim], batch_norm=True))


class BarlowTwinsProjectionHead(ProjectionHead):
    """Barlow Twins (Zbontar et al. 2021, sec. 2): "The projector network has three linear
    layers, each with 8192 output units. The first two layers of the projector are followed
    by a batch normalization layer and rectified linear units." VICReg's expander is the
    same (Bardes et al. 2022, sec. 4.1)."""

    def __init__(self, in_dim: int = 2048, hidden_dim: int = 8192, out_dim: int = 8192) -> None:
        super().__init__(_mlp([in_dim, hidden_dim, hidden_dim, out_dim], batch_norm=True))


VICRegProjectionHead = BarlowTwinsProjectionHead


class SwAVProjectionHead(ProjectionHead):
    """SwAV (Caron et al. 2020, sec. 4.1 / code): a 2-layer MLP 2048 -> 2048 (BN, ReLU) -> 128,
    whose L2-normalised output is scored against the prototypes."""

    def __init__(self, in_dim: int = 2048, hidden_dim: int = 2048, out_dim: int = 128) -> None:
        super().__init__(_mlp([in_dim, hidden_dim, out_dim], batch_norm=True))


class SwAVPrototypes(nn.Module):
    """SwAV's K trainable prototypes ("K = 3000" on ImageNet): a bias-free linear layer whose
    rows are kept on the unit sphere (:meth:`normalize` after every optimiser step), so its
    output is the cosine similarity of a normalised embedding with each prototype."""

    def __init__(self, in_dim: int = 128, num_prototypes: int = 3000) -> None:
        super().__init__()
        if num_prototypes < 2:
            raise ValueError(f"num_prototypes must be >= 2, got {num_prototypes}")
        self.layer = nn.Linear(in_dim, num_prototypes, bias=False)
        self.normalize()

    @torch.no_grad()
    def normalize(self) -> None:
        self.layer.weight.copy_(nn.functional.normalize(self.layer.weight, dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) L2-normalised embeddings -> (N, K) prototype scores, in fp32: they
        are divided by a temperature of 0.1 and fed to Sinkhorn with epsilon 0.05."""
        return _fp32_linear(self.layer, x)


class DINOProjectionHead(nn.Module):
    """DINO (Caron et al. 2021, sec. 3.1 and appendix): "a 3-layer multi-layer perceptron
    (MLP) with hidden dimension 2048 followed by l2 normalization and a weight normalized
    fully connected layer with K dimensions" (K = 65536, bottleneck 256, GELU, no BN). The
    last layer's norm is frozen at 1 (``norm_last_layer``), as in their code."""

    def __init__(
        self,
        in_dim: int = 2048,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        out_dim: int = 65536,
        batch_norm: bool = False,
        num_layers: int = 3,
    ) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"the DINO head needs at least 2 MLP layers, got {num_layers}")
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        blocks: list[Block] = [
            (d_in, d_out, nn.BatchNorm1d(d_out) if batch_norm else None, nn.GELU())
            for d_in, d_out in itertools.pairwise(dims)
        ]
        blocks.append((hidden_dim, bottleneck_dim, None, None))
        self.mlp = ProjectionHead(blocks)
        self.last_layer = nn.utils.parametrizations.weight_norm(
            nn.Linear(bottleneck_dim, out_dim, bias=False)
        )
        self.last_layer.parametrizations.weight.original0.data.fill_(1)
        self.last_layer.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, out_dim) logits."""
        x = nn.functional.normalize(self.mlp(x), dim=-1)
        # fp32 logits: the teacher's are sharpened by a temperature of 0.04.
        return _fp32_linear(self.last_layer, x)

    def cancel_last_layer_gradients(self) -> None:
        """DINO freezes the last layer during the first epoch: "helps training"."""
        for p in self.last_layer.parameters():
            p.grad = None


@full_precision
def _fp32_linear(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return layer(x)


class Normalized(nn.Module):
    """``modules`` in sequence, then L2-normalised in fp32: the embedding an epoch pass
    clusters or a memory bank stores (DeepCluster-v2, PCL, NPID)."""

    def __init__(self, *modules: nn.Module) -> None:
        super().__init__()
        self.inner = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.inner(x).float(), dim=1)
