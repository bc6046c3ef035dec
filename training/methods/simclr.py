"""SimCLR (Chen, Kornblith, Norouzi & Hinton 2020), https://arxiv.org/abs/2002.05709, with
SimCLR v2's options (Chen, Kornblith, Swersky, Norouzi & Hinton 2020,
https://arxiv.org/abs/2006.10029): a 3-layer projector (``proj_layers: 3``), a MoCo-style
memory of momentum-encoder keys as extra negatives (``queue_size``), and fine-tuning from the
projector's middle layer: ``python -m zoo.training.methods.simclr RUN_DIR --middle-layer OUT``
exports the backbone with the projector's first layer (:mod:`zoo.models.middle_layer`)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from zoo.training.heads import SimCLRProjectionHead
from zoo.training.losses import NTXentLoss
from zoo.training.methods.base import Method, MethodConfig, forward_crops, register_method
from zoo.training.queue import FeatureQueue

if __name__ == "__main__":
    # `python -m zoo.training.methods.simclr RUN_DIR ...`: importing the package already ran (and
    # registered) this module, so run that copy's main() rather than define SimCLR a second time.
    from zoo.training.methods.simclr import main as _main

    raise SystemExit(_main())


@dataclass(frozen=True)
class SimCLRConfig(MethodConfig):
    temperature: float = 0.5
    proj_hidden_dim: int = 2048
    proj_out_dim: int = 128
    proj_layers: int = 2
    #: BN in the projector (SimCLR v2, solo-learn, lightly); v1 had none.
    proj_batch_norm: bool = True
    #: negatives from every rank, with gradients (SimCLR's "global" negatives).
    gather_distributed: bool = True
    #: SimCLR v2's MoCo-style memory: K past keys of a momentum copy of the encoder and
    #: projector join every anchor's negatives (0 = off, SimCLR v1). v2 also deepens the
    #: projector: ``proj_layers: 3``.
    queue_size: int = 0
    #: EMA momentum of the memory network (MoCo's 0.999).
    memory_momentum: float = 0.999


@register_method
class SimCLR(Method):
    """Two views of each image are pulled together and pushed away from all other views of
    the batch: ``NT-Xent(g(f(x1)), g(f(x2)))``.

    Differences from google-research/simclr: the loss is the mean over the 2N anchors, where
    their objective is ``loss_a + loss_b`` (each a mean over N anchors), twice ours; under
    LARS the adapted weights do not feel the factor, but the biases and norm layers (excluded
    from the adaptation) and every parameter under SGD take half the step theirs would at the
    same learning rate. Their v2 projector ends with a BN layer (``use_bn=True`` on the output
    layer too); ours ends with a bare Linear layer.
    """

    name = "simclr"
    momentum_backbone_name = "key_backbone"
    Config = SimCLRConfig

    def __init__(self, backbone: nn.Module, embed_dim: int, config: SimCLRConfig) -> None:
        super().__init__(backbone, embed_dim, config)
        self.projection = SimCLRProjectionHead(
            embed_dim, config.proj_hidden_dim, config.proj_out_dim, config.proj_layers, config.proj_batch_norm
        )
        self.loss = NTXentLoss(config.temperature, gather_distributed=config.gather_distributed)
        if config.queue_size:
            # SimCLR v2's memory (additive: v1 runs build none of this).
            self.keep_momentum_copies({"projection": "key_projection"})
            self.queue = FeatureQueue(config.queue_size, config.proj_out_dim)

    def training_step(self, views: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        if len(views) != 2:
            raise ValueError(f"SimCLR takes 2 views, got {len(views)}")
        h0, h1 = forward_crops(self.backbone, views)
        if not self.config.queue_size:
            return {"loss": self.loss(self.projection(h0), self.projection(h1))}
        loss = self.loss(self.projection(h0), self.projection(h1), self.queue())
        with torch.no_grad():
            for keys in forward_crops(self.key_backbone, views):
                self.queue.enqueue(nn.functional.normalize(self.key_projection(keys).float(), dim=1))
        return {"loss": loss}

    def momentum_range(self) -> tuple[float, float]:
        return self.config.memory_momentum, self.config.memory_momentum  # constant, as SimCLR v2's


# ------------------------------------------------------------------------------------------
# SimCLR v2's fine-tuning point: the backbone and the projector's first layer
# ------------------------------------------------------------------------------------------


def middle_layer_encoder(method: SimCLR) -> nn.Module:
    """The backbone followed by the projector's first layer (Linear, BN, ReLU) as one module of
    the registered middle-layer architecture (:mod:`zoo.models.middle_layer`), weights copied."""
    from zoo.models.middle_layer import MiddleLayerEncoder

    config = method.config
    if config.proj_layers < 3 or not config.proj_batch_norm:
        raise ValueError(
            "SimCLR v2's middle layer needs a projector of 3 or more layers with BN (proj_layers: 3,"
            f" proj_batch_norm: true); this run has {config.proj_layers} layers"
            f"{'' if config.proj_batch_norm else ' without BN'}"
        )
    linear, norm = method.projection.layers[0], method.projection.layers[1]
    encoder = MiddleLayerEncoder(copy.deepcopy(method.backbone), linear.in_features, linear.out_features)
    encoder.projection[0].load_state_dict(linear.state_dict())
    encoder.projection[1].load_state_dict(norm.state_dict())
    return encoder.float().cpu().eval()


def export_middle_layer(run_dir: str | Path, out: str | Path, *, data: str | None = None) -> Path:
    """Export a finished SimCLR v2 run's middle-layer encoder as a zoo folder named
    ``<run name>-mid``, with the run's preprocessing (``zoo eval OUT --protocol finetune`` then
    fine-tunes from the head's middle layer, as SimCLR v2 does)."""
    import dataclasses

    from zoo.training.loop import load_run

    import zoo
    from zoo.errors import ZooError
    from zoo.export import export
    from zoo.models.middle_layer import middle_layer_arch

    run_dir = Path(run_dir)
    if not (run_dir / "export" / "model.safetensors").is_file():
        raise ZooError(f"{run_dir}: no export/ yet; the middle layer is exported from a finished run")
    trainer, _ = load_run(run_dir, SimCLR.name, data=data)
    method = trainer.method
    assert isinstance(method, SimCLR)
    try:
        encoder = middle_layer_encoder(method)
        arch = middle_layer_arch(trainer.recipe.arch, method.config.proj_hidden_dim)
    except ValueError as e:
        raise ZooError(f"{run_dir}: {e}") from None
    run_export = zoo.load(str(run_dir / "export"))
    entry = dataclasses.replace(
        run_export.entry,
        name=f"{run_export.entry.name}-mid",
        arch=arch,
        measured=(),
        description=(
            f"{run_export.entry.name}'s backbone and its projector's first layer (Linear, BN, ReLU):"
            " SimCLR v2's fine-tuning point (Chen et al. 2020b, sec. 2)."
        ),
    )
    export(zoo.Encoder(encoder, arch, run_export.preprocess, entry), out, onnx=False)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.training.methods.simclr RUN_DIR --middle-layer OUT [--data ROOT]``."""
    import argparse
    import sys

    from zoo.errors import ZooError

    parser = argparse.ArgumentParser(
        prog="python -m zoo.training.methods.simclr",
        description="Export a SimCLR v2 run's encoder with its projector's first layer, the point"
        " SimCLR v2 fine-tunes from.",
    )
    parser.add_argument("run_dir", type=Path, help="the run.out_dir of a finished `zoo train` SimCLR run")
    parser.add_argument(
        "--middle-layer", type=Path, required=True, metavar="OUT", help="the zoo folder to write"
    )
    parser.add_argument("--data", default=None, help="dataset root (default: the recipe's data.path)")
    args = parser.parse_args(argv)
    try:
        out = export_middle_layer(args.run_dir, args.middle_layer, data=args.data)
    except ZooError as e:
        print(f"zoo: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print(f"wrote {out}: fine-tune it with `zoo eval {out} --protocol finetune --label-fraction 0.1`")
    return 0
