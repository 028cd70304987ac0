"""The presets, one entry each: what a new run's model and training start from.

Plain data, no torch: the command line offers these names without loading a model. A new preset is
one entry in each dictionary (and, for a new architecture, a class in :mod:`.model`).
"""

from __future__ import annotations

from typing import Any

# ModelConfig fields per preset (the rest keep their defaults).
PRESET_MODEL: dict[str, dict[str, Any]] = {
    "seed": {},  # the post's model as written
    "default": {
        "latent_dim": 16,
        "pixel_head": 16,
        "pixel_context": 9,
        "fitted_prior": True,
        "calibrated_temperature": True,
    },
}

# TrainConfig fields per preset. The original post trained with RMSprop (Keras defaults: lr 1e-3,
# rho 0.9), batch 8, 30 epochs, KL annealing from epoch 10 over 10 epochs; the default preset
# trains larger batches with Adam.
PRESET_TRAINING: dict[str, dict[str, Any]] = {
    "seed": {
        "epochs": 30,
        "batch_size": 8,
        "lr": 1e-3,
        "optimizer": "rmsprop",
        "kl_start": 10,
        "kl_steep": 10,
        "gpu_batch_size": 0,  # the post's batch of 8 everywhere
    },
    # Free bits keep the code in use: the pixel head could otherwise explain the drawings alone.
    "default": {"free_bits": 1.0, "flip": True, "context_noise": 0.2},
}
