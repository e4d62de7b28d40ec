"""The nonlinearities a backbone may use (`model.activation`).

Why more than ReLU: the implicit hypergradient (I + H/λ)⁻¹∇L is only defined where the inner
objective is twice differentiable. With ReLU the proximal minimiser can sit on a kink, where
gradient descent chatters and no Hessian exists, so a fidelity study has no exact answer to
score against; softplus, GELU and tanh are smooth everywhere (run.py compare defaults to one)."""
import torch
import torch.nn.functional as F

ACTIVATIONS = {"relu": torch.relu, "softplus": F.softplus, "gelu": F.gelu, "tanh": torch.tanh}
