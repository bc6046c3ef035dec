"""Self-supervised training (installed as ``zoo.training``).

One trainer (:mod:`zoo.training.loop`) for nine methods (:mod:`zoo.training.methods`), each
a plain ``nn.Module`` over a zoo backbone, heads (:mod:`zoo.training.heads`) and a loss
(:mod:`zoo.training.losses`); recipes are YAML files loaded into typed dataclasses
(:mod:`zoo.training.recipe`). Run ``zoo train RECIPE [key=value ...]`` or
``torchrun --nproc-per-node N -m zoo.training RECIPE``; see ``training/README.md``.
"""
