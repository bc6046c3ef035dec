"""Deep InfoMax, local-global (Hjelm, Fedorov, Lavoie-Marchildon, Grewal, Bachman, Trischler
& Bengio 2019), https://arxiv.org/abs/1808.06670.

The global feature of an image (the pooled backbone output) is trained to identify the image's
own local features (an intermediate feature map, every location) among those of the other
images of the batch: the local-global InfoNCE of :class:`DIMLoss`, with a small MLP on the
global feature and 1x1 convolutions on the local ones projecting both to a common space.
``multiview=True`` is AMDIM's extension (:mod:`zoo.training.methods.amdim`): the global feature
of one augmented view predicts the local features of the *other* view, at several scales.

What the CIFAR recipe changes from the paper: the quarter-width CIFAR ResNet-18, local
features from its ``layer1`` averaged to 8 x 8 locations (``local_grid``; each sees 14 px, where
the paper's second convolution sees 10 px of the 32 px image), 128-d critic space, AMDIM's score
scaling, penalty and clipping at 20, no prior-matching term, cosine SGD, and plainer critics
(1x1 conv-ReLU-conv and an MLP, without the BatchNorm, identity-initialised linear shortcut and
LayerNorm output of the authors' ``MI1x1ConvNet`` / ``MIFCNet``). Local features must be
local: from ``layer3``, whose every location sees the whole image, the global feature found its
own image's maps by colour statistics alone and the run stayed below random init.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from zoo.training.augment import ViewSpec
from zoo.training.losses.dim import DIMLoss
from zoo.training.methods.base import Method, MethodConfig, register_method


@dataclass(frozen=True)
class DIMConfig(MethodConfig):
    #: Comma-separated backbone modules whose outputs are the local features (``layer3``;
    #: AMDIM: several scales, e.g. ``layer3,layer4``).
    local_layers: str = "layer3"
    critic_dim: int = 128
    clip: float = 20.0
    #: AMDIM's code: scores divided by sqrt(critic_dim) and ``score_penalty * mean(score^2)``
    #: added to the loss (:class:`DIMLoss`); DIM's paper has neither.
    score_scale: bool = False
    score_penalty: float = 0.0
    #: Average-pool each local map to at most this many locations a side before the critic (0:
    #: every location). An early layer (``layer1``: 11 px receptive fields, as local as the
    #: paper's 10 px on CIFAR-10) has 32 x 32 locations at 32 px, whose scores against every
    #: image of the batch would cost 16 times those of ``layer3``'s 8 x 8.
    local_grid: int = 0
    #: AMDIM: the global feature of each view predicts the other view's local features.
    multiview: bool = False


class _LocalProjection(nn.Module):
    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, dim, 1), nn.ReLU(inplace=True), nn.Conv2d(dim, dim, 1))

    def forward(self, m: torch.Tensor) -> torch.Tensor:
        return self.net(m).flatten(2)  # (N, F, H * W)


@register_method
class DIM(Method):
    """Local-global InfoNCE between the pooled feature and the feature maps."""

    name = "dim"
    Config = DIMConfig

    def __init__(self, backbone: nn.Module, embed_dim: int, config: DIMConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        c = config
        self.layers = [name.strip() for name in c.local_layers.split(",") if name.strip()]
        if not self.layers:
            raise ValueError("local_layers names at least one backbone module")
        if c.local_grid < 0:
            raise ValueError(f"local_grid must be >= 0 (0: every location), got {c.local_grid}")
        channels = self._probe_channels()
        self.global_projection = nn.Sequential(
            nn.Linear(embed_dim, c.critic_dim), nn.ReLU(inplace=True), nn.Linear(c.critic_dim, c.critic_dim)
        )
        self.local_projections = nn.ModuleList(_LocalProjection(ch, c.critic_dim) for ch in channels)
        self.loss = DIMLoss(c.clip, c.critic_dim**-0.5 if c.score_scale else 1.0, c.score_penalty)

    def _probe_channels(self) -> list[int]:
        """The channels of each local feature map (one forward of a blank 32-pixel image)."""
        for name in self.layers:
            try:
                self.backbone.get_submodule(name)
            except AttributeError:
                raise ValueError(f"local_layers: the backbone has no module {name!r}") from None
        was = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            _, maps = self._forward_with_maps(torch.zeros(1, 3, 32, 32))
        self.backbone.train(was)
        return [m.shape[1] for m in maps]

    def _forward_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The backbone's output and the local layers' outputs, caught by hooks that live
        only for this call (the exported backbone carries none)."""
        maps: dict[str, torch.Tensor] = {}
        handles = [
            self.backbone.get_submodule(name).register_forward_hook(
                lambda module, inputs, output, name=name: maps.__setitem__(name, output)
            )
            for name in self.layers
        ]
        try:
            h = self.backbone(x)
        finally:
            for handle in handles:
                handle.remove()
        return h, [maps[name] for name in self.layers]

    @classmethod
    def view_spec(cls, config: MethodConfig) -> ViewSpec:
        return ViewSpec() if config.multiview else ViewSpec(count=1)  # type: ignore[attr-defined]

    def _local_map(self, m: torch.Tensor) -> torch.Tensor:
        grid = self.config.local_grid
        if grid and max(m.shape[-2:]) > grid:
            m = nn.functional.adaptive_avg_pool2d(m, (min(grid, m.shape[-2]), min(grid, m.shape[-1])))
        return m

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h, maps = self._forward_with_maps(x)
        return self.global_projection(h), [
            proj(self._local_map(m)) for proj, m in zip(self.local_projections, maps, strict=True)
        ]

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.config.multiview:
            g, locals_ = self._encode(views[0])
            return {"loss": sum(self.loss(g, m) for m in locals_) / len(locals_)}
        if len(views) != 2:
            raise ValueError(f"AMDIM takes 2 views, got {len(views)}")
        (g0, l0), (g1, l1) = self._encode(views[0]), self._encode(views[1])
        terms = [self.loss(g0, m) for m in l1] + [self.loss(g1, m) for m in l0]
        return {"loss": sum(terms) / len(terms)}
