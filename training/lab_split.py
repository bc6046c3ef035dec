"""CMC's encoder, one network on L and one on ab of CIELAB: it is a zoo architecture
(:mod:`zoo.models.lab_split`, ``cmc_resnet18_cifar_quarter``) so a CMC run exports and loads
like any zoo encoder; this module keeps the training-side import path."""

from zoo.models.lab_split import LAB_SPLIT_ARCHS, LabSplitEncoder, lab_split_arch, with_input_channels

__all__ = ["LAB_SPLIT_ARCHS", "LabSplitEncoder", "lab_split_arch", "with_input_channels"]
