"""Networks: torso (MLP for vectors, the paper's CNN for images), optional LSTM core, heads.

Policy and value share every non-output layer (paper, section 4). Initialisation is
orthogonal (gain sqrt(2) in the torso, 0.01 on the policy head so the initial policy is
near-uniform, 1 on the value head).

  layers        initialisation, activations, the MLP torso
  cnn           the paper's CNN (AtariCNN)
  tape          its acting forwards' activations and their closed-form backward (replay)
  torso         the torso for an observation space
  heads         ActorCritic, QNetwork, the Gaussian policy's mean and variance
  numpy_mirror  NumPy mirrors of the acting forwards
"""
from .cnn import CHANNELS_LAST_MIN_BATCH, AtariCNN
from .heads import VAR_EPS, ActorCritic, QNetwork, gaussian_mean_var, mean_center_half
from .layers import ACTIVATIONS, init, mlp_torso
from .numpy_mirror import NumpyCNN, NumpyMLP, RecurrentScores, numpy_mlp, numpy_scores
from .tape import ActivationTape, cnn_backward
from .torso import build_torso

__all__ = [
    "ACTIVATIONS", "CHANNELS_LAST_MIN_BATCH", "VAR_EPS", "ActivationTape", "ActorCritic", "AtariCNN",
    "NumpyCNN", "NumpyMLP", "QNetwork", "RecurrentScores", "build_torso", "cnn_backward",
    "gaussian_mean_var", "init", "mean_center_half", "mlp_torso", "numpy_mlp", "numpy_scores",
]
