"""Builds the backbone a config asks for, sized to the episodes the environment produces."""
from torch import nn

from models.cnn4 import CNN4
from models.mlp import SinusoidMLP

BACKBONES = ("cnn4", "mlp")


class BackboneError(ValueError):
    """The backbone a config names does not fit the data; the message names the fix."""


def build_backbone(name: str, input_shape: tuple, out_features: int, hidden: int,
                   bn_steps: int = 1, track_bn: bool = False,
                   activation: str = "relu") -> nn.Module:
    if name == "cnn4":
        if len(input_shape) != 3:
            raise BackboneError(f"model.backbone=cnn4 needs image episodes (C, H, W), but this "
                                f"data gives inputs of shape {tuple(input_shape)}; "
                                f"use model.backbone=mlp")
        return CNN4(input_shape[0], input_shape[-1], out_features, hidden, bn_steps, track_bn,
                    activation)
    if name == "mlp":
        if len(input_shape) != 1:
            raise BackboneError(f"model.backbone=mlp takes vector inputs, but this data gives "
                                f"images of shape {tuple(input_shape)}; use model.backbone=cnn4")
        return SinusoidMLP(hidden, input_shape[0], out_features, activation)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
