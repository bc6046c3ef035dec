"""Feature-regression distillation: the plain baseline beside CRD (Tian et al. 2020 compare
against it; FitNets' hint loss, Romero et al. 2015, https://arxiv.org/abs/1412.6550, applied to
the final embedding).

A linear regressor on the student's pooled features is trained, with the student, to match
the frozen teacher's features of the same view (cosine form, :class:`FeatureRegressionLoss`).
The CIFAR recipe uses the same teacher, student and views as CRD's, so the two compare
directly; it changes from FitNets in matching the final embedding rather than a middle
layer, with no labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.distill import FrozenTeacher
from zoo.training.losses.feature_regression import FeatureRegressionLoss
from zoo.training.methods.base import DataInfo, Method, MethodConfig, MethodInputError, Needs, register_method


@dataclass(frozen=True)
class FeatureRegressionConfig(MethodConfig):
    #: The teacher: a zoo name (``zoo list``) or an exported folder.
    teacher: str = ""


@register_method
class FeatureRegression(Method):
    """Regress the frozen teacher's features from the student's (one view)."""

    name = "feature_regression"
    Config = FeatureRegressionConfig
    needs = Needs(teacher=True)

    def __init__(self, backbone: nn.Module, embed_dim: int, config: FeatureRegressionConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.loss = FeatureRegressionLoss()

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec(count=1)

    def set_teacher(self, teacher: nn.Module, embed_dim: int) -> None:
        self.teacher = FrozenTeacher(teacher)
        self.regressor = nn.Linear(self.embed_dim, embed_dim)

    def setup_data(self, info: DataInfo) -> None:
        if not hasattr(self, "teacher"):
            raise MethodInputError("feature_regression: no teacher was given (set method.teacher)")

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        x = views[0]
        return {"loss": self.loss(self.regressor(self.backbone(x)), self.teacher(x))}
