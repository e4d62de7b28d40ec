"""The sinusoid-regression network of Finn et al. 2017: 1 -> 40 -> 40 -> 1 with ReLU."""
import torch
from torch import nn


class SinusoidMLP(nn.Module):
    def __init__(self, hidden: int = 40, in_features: int = 1, out_features: int = 1):
        super().__init__()
        self.layer1 = nn.Linear(in_features, hidden)
        self.layer2 = nn.Linear(hidden, hidden)
        self.head = nn.Linear(hidden, out_features)
        self.feature_dim = hidden

    def features(self, x, step=None):
        return torch.relu(self.layer2(torch.relu(self.layer1(x))))

    def forward(self, x, step=None):
        return self.head(self.features(x, step))
