"""The sinusoid-regression network of Finn et al. 2017: 1 -> 40 -> 40 -> 1 with ReLU (or
another activation, models/activations.py)."""
from torch import nn

from models.activations import ACTIVATIONS


class SinusoidMLP(nn.Module):
    def __init__(self, hidden: int = 40, in_features: int = 1, out_features: int = 1,
                 activation: str = "relu"):
        super().__init__()
        self.activation = ACTIVATIONS[activation]
        self.layer1 = nn.Linear(in_features, hidden)
        self.layer2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, out_features)
        self.feature_dim = hidden

    def features(self, x, step=None):
        return self.activation(self.layer2(self.activation(self.layer1(x))))

    def forward(self, x, step=None):
        return self.head(self.features(x, step))
