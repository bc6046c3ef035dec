"""MoCo v3 (Chen, Xie & He 2021), https://arxiv.org/abs/2104.02057."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.heads import MoCoV3PredictionHead, MoCoV3ProjectionHead
from zoo.training.losses import InfoNCELoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method


@dataclass(frozen=True)
class MoCoV3Config(MethodConfig):
    #: tau: 1.0 for ResNet-50 in the paper, 0.2 for ViTs.
    temperature: float = 1.0
    proj_hidden_dim: int = 4096
    proj_out_dim: int = 256
    pred_hidden_dim: int = 4096
    #: Projector depth; None: their code's for the backbone, 3 for a ViT (``MoCo_ViT``), 2
    #: otherwise (``MoCo_ResNet``; the paper's text says 3 for both).
    projector_layers: int | None = None
    #: Whether the predictor ends with BN (no affine); None: their code's, True for a ViT,
    #: False otherwise.
    predictor_last_bn: bool | None = None
    base_momentum: float = 0.99
    final_momentum: float = 1.0
    gather_distributed: bool = True


@register_method
class MoCoV3(Method):
    """No queue: the keys of the (global) batch are the negatives, and the query goes
    through a predictor, "ctr(q1, k2) + ctr(q2, k1)" with the loss scaled by 2 tau
    (Algorithm 1). The momentum encoder follows a cosine schedule to 1.

    Heads as their code per backbone (config ``projector_layers``/``predictor_last_bn``
    left unset): a ViT (a backbone with ``patch_embed``) gets a 3-layer projector and a
    predictor ending in BN, any other backbone (``MoCo_ResNet``) a 2-layer projector and
    a predictor without the last BN. Before these fields existed every backbone got the ViT
    layout, so recipes that trained ResNet weights then pin ``projector_layers: 3`` and
    ``predictor_last_bn: true``.

    Unlike their code, which runs each view through the encoders on its own (BN statistics
    per view), the two views go through the backbones as one batch here.
    """

    name = "moco_v3"
    momentum_backbone_name = "key_backbone"
    Config = MoCoV3Config

    def __init__(self, backbone: nn.Module, embed_dim: int, config: MoCoV3Config) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        vit = getattr(backbone, "patch_embed", None) is not None
        layers = c.projector_layers if c.projector_layers is not None else (3 if vit else 2)
        last_bn = c.predictor_last_bn if c.predictor_last_bn is not None else vit
        self.projection = MoCoV3ProjectionHead(embed_dim, c.proj_hidden_dim, c.proj_out_dim, layers)
        self.prediction = MoCoV3PredictionHead(
            c.proj_out_dim, c.pred_hidden_dim, c.proj_out_dim, last_bn=last_bn
        )
        self.keep_momentum_copies({"projection": "key_projection"})
        self.loss = InfoNCELoss(
            c.temperature, scale_by_temperature=True, gather_distributed=c.gather_distributed
        )

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"MoCo v3 takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        q0, q1 = self.prediction(self.projection(h0)), self.prediction(self.projection(h1))
        with torch.no_grad():
            k0, k1 = (self.key_projection(h) for h in forward_crops(self.key_backbone, views))
        return {"loss": self.loss(q0, k1) + self.loss(q1, k0)}
