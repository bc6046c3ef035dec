"""MAE, masked autoencoders (He, Chen, Xie, Li, Dollár & Girshick 2022),
https://arxiv.org/abs/2111.06377.

The image is cut into patches; 75% of them, chosen at random per image, are removed, and the
ViT encoder sees only the visible 25% (with their position embeddings; no mask tokens). A
light decoder gets the encoded visible tokens plus a shared learned mask token at every
removed position, and predicts the pixels of the removed patches; the loss is the mean
squared error on removed patches only, against each patch's pixels normalised by its own
mean and variance (:class:`zoo.training.losses.MAELoss`). The decoder is discarded: what
ships is the encoder (the timm ViT backbone), whose pooled features are evaluated.

What zoo's recipe changes from the paper: a ViT-Tiny on 32 px CIFAR-10 images in 4 px
patches (``vit_tiny_patch4_32``, 64 patches, 16 visible) instead of ViT-B/L/H on 224 px
ImageNet in 16 px patches; a decoder 128 wide and 2 blocks deep instead of 512 x 8; batch 256
instead of 4096 (AdamW, base lr 1.5e-4 x batch / 256, betas (0.9, 0.95), weight decay 0.05,
cosine after warm-up, random crops of scale (0.2, 1) and flips, as the paper; plus the view
presets' 20% grey views, which the paper has not: ``augment.grayscale_p=0`` removes them). Position
embeddings of encoder and decoder are fixed 2-D sine-cosine (the paper's), so the encoder's
``pos_embed`` is frozen. Features are the average of the patch tokens (the arch's pooling;
the paper's linear probe uses the class token, its fine-tuning the average).

The reconstruction error on masked patches (normalised-pixel MSE) is the loss column of
metrics.csv; ``mask_ratio`` is logged beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from zoo.training.losses import MAELoss
from zoo.training.methods._pretext import one_view_spec, single_view
from zoo.training.methods.base import Method, MethodConfig, register_method
from zoo.training.pretext import PretextSizeError
from zoo.training.pretext.masks import check_patch_grid, random_patch_mask


@dataclass(frozen=True)
class MAEConfig(MethodConfig):
    mask_ratio: float = 0.75
    decoder_dim: int = 512
    decoder_depth: int = 8
    decoder_heads: int = 16
    #: Normalised-pixel target (the paper's default; False: raw normalised-image pixels).
    norm_pix_loss: bool = True


def sincos_2d(dim: int, grid: int, cls_token: bool = True) -> torch.Tensor:
    """MAE's fixed 2-D sine-cosine position embedding, (1 + grid^2, dim) with a zero row for
    the class token: half the channels encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"sine-cosine position embeddings need a width divisible by 4, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))
    ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")

    def embed(pos: torch.Tensor) -> torch.Tensor:
        out = pos.flatten().double()[:, None] * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    emb = torch.cat([embed(xs), embed(ys)], dim=1)  # MAE: width first (its grid is (w, h))
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=emb.dtype), emb])
    return emb.float()


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, L, patch * patch * C), patches row by row, pixels (p, q, c)."""
    n, c, h, w = x.shape
    gh, gw = h // patch, w // patch
    x = x.reshape(n, c, gh, patch, gw, patch)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(n, gh * gw, patch * patch * c)


def unpatchify(p: torch.Tensor, patch: int, channels: int = 3) -> torch.Tensor:
    n, length, _ = p.shape
    g = int(length**0.5)
    x = p.reshape(n, g, g, patch, patch, channels).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(n, channels, g * patch, g * patch)


@register_method
class MAE(Method):
    """Encoder on the visible patches, decoder from visible tokens + mask tokens to pixels."""

    name = "mae"
    Config = MAEConfig
    task_metrics: ClassVar[dict[str, str]] = {"loss": "MSE of the normalised pixels of the masked patches"}

    def __init__(self, backbone: nn.Module, embed_dim: int, config: MAEConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        for attr in ("patch_embed", "pos_embed", "cls_token", "blocks", "norm"):
            if getattr(backbone, attr, None) is None:
                raise TypeError(
                    f"MAE needs a timm VisionTransformer with a class token (no {attr!r} on"
                    f" {type(backbone).__name__}); use a ViT arch such as vit_tiny_patch4_32"
                )
        pe = backbone.patch_embed
        self.patch = int(pe.patch_size[0])
        self.image_size = int(pe.img_size[0])
        self.num_patches = check_patch_grid(self.image_size, self.patch, config.mask_ratio)
        grid = self.image_size // self.patch
        with torch.no_grad():  # the paper's fixed sine-cosine embedding, frozen
            backbone.pos_embed.copy_(sincos_2d(embed_dim, grid)[None])
        backbone.pos_embed.requires_grad_(False)
        from timm.models.vision_transformer import Block

        d = config.decoder_dim
        self.decoder_embed = nn.Linear(embed_dim, d)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.register_buffer("decoder_pos", sincos_2d(d, grid)[None], persistent=False)
        self.decoder_blocks = nn.Sequential(
            *[
                Block(d, config.decoder_heads, mlp_ratio=4.0, qkv_bias=True)
                for _ in range(config.decoder_depth)
            ]
        )
        self.decoder_norm = nn.LayerNorm(d)
        self.decoder_pred = nn.Linear(d, self.patch * self.patch * 3)
        nn.init.normal_(self.mask_token, std=0.02)
        self.loss = MAELoss(norm_pix=config.norm_pix_loss)

    @classmethod
    def view_spec(cls, config: MethodConfig):
        return one_view_spec()

    def encode_visible(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Encoder output (N, 1 + K, D) of the class token and the kept patches ``keep``."""
        vit = self.backbone
        tokens = vit.patch_embed(x) + vit.pos_embed[:, 1:]
        tokens = tokens.gather(1, keep[..., None].expand(-1, -1, tokens.shape[-1]))
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(len(x), -1, -1)
        return vit.norm(vit.blocks(torch.cat([cls, tokens], dim=1)))

    def decode(self, latent: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Pixel predictions (N, L, patch * patch * 3) for every patch position."""
        y = self.decoder_embed(latent)
        n, d = len(y), y.shape[-1]
        full = self.mask_token.to(y.dtype).expand(n, self.num_patches, d).clone()
        full = full.scatter(1, keep[..., None].expand(-1, -1, d), y[:, 1:])
        y = torch.cat([y[:, :1], full], dim=1) + self.decoder_pos.to(y.dtype)
        y = self.decoder_norm(self.decoder_blocks(y))
        return self.decoder_pred(y[:, 1:])

    def training_step(self, views: list[torch.Tensor], **batch: torch.Tensor) -> dict[str, torch.Tensor]:
        x = single_view(views, "MAE")
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise PretextSizeError(
                f"MAE: the encoder takes {self.image_size} px images in {self.patch} px patches,"
                f" but the views are {x.shape[-2]}x{x.shape[-1]} px; set augment.size to {self.image_size}"
            )
        keep, mask = random_patch_mask(len(x), self.num_patches, self.config.mask_ratio, None)
        keep, mask = keep.to(x.device), mask.to(x.device)
        pred = self.decode(self.encode_visible(x, keep), keep)
        loss = self.loss(pred, patchify(x, self.patch), mask)
        return {"loss": loss, "mask_ratio": mask.float().mean()}
