"""Self-supervised training (installed as ``zoo.training``).

The methods, losses, trainer and recipes are specified in the training issue and land
here; nothing in this package is used by the library yet.
"""
