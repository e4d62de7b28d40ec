"""The standard 4-block convolutional backbone of few-shot learning (Vinyals et al. 2016,
Finn et al. 2017): [conv3x3 -> batch norm -> ReLU -> 2x2 max-pool] x 4, then a linear head.
32 filters for mini-ImageNet/CIFAR-FS, 64 for Omniglot."""
from torch import nn

from models.activations import ACTIVATIONS
from models.step_batchnorm import StepBatchNorm


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, bn_steps: int, track_bn: bool,
                 activation: str = "relu"):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm = StepBatchNorm(out_channels, bn_steps, track_bn)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x, step=None):
        return self.pool(self.activation(self.norm(self.conv(x), step)))


class CNN4(nn.Module):
    def __init__(self, in_channels: int, image_size: int, out_features: int, hidden: int = 64,
                 bn_steps: int = 1, track_bn: bool = False, activation: str = "relu"):
        super().__init__()
        channels = [in_channels] + [hidden] * 4
        self.blocks = nn.ModuleList(
            ConvBlock(channels[i], channels[i + 1], bn_steps, track_bn, activation)
            for i in range(4))
        side = image_size
        for _ in range(4):
            side //= 2
        self.feature_dim = hidden * max(side, 1) ** 2
        self.head = nn.Linear(self.feature_dim, out_features)
        for block in self.blocks:  # Xavier-uniform as in the reference MAML code
            nn.init.xavier_uniform_(block.conv.weight)
            nn.init.zeros_(block.conv.bias)
        nn.init.xavier_uniform_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def features(self, x, step=None):
        for block in self.blocks:
            x = block(x, step)
        return x.flatten(1)

    def forward(self, x, step=None):
        return self.head(self.features(x, step))
