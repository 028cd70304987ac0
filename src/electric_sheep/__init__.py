"""electric-sheep: a variational autoencoder that learns to draw Quick, Draw! sheep.

The library is split by concern, each layer using only those above it:

- :mod:`~electric_sheep.core`: the models (``core.model``), the terms of the ELBO, KL schedules,
  batched inference and the training loop ``core.trainer.fit``, on tensors only;
- :mod:`~electric_sheep.data`: drawings from every format (``data.drawings.load_drawings``);
- :mod:`~electric_sheep.runs`: run folders (``runs.training.train``, ``runs.checkpoint.load_model``);
- :mod:`~electric_sheep.analysis`: evaluation, generation, latent space, anomaly scores;
- :mod:`~electric_sheep.render`: figures, the report, the explorer, the app;
- :mod:`~electric_sheep.cli`: the ``sheep`` command, a thin layer on top.

Nothing heavy is imported here, so ``import electric_sheep`` is instant.
"""

__version__ = "0.1.0"
