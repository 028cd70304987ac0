"""electric-sheep: a variational autoencoder that learns to draw Quick, Draw! sheep.

The library is split by concern: :mod:`~electric_sheep.data` and :mod:`~electric_sheep.raster`
read drawings, :mod:`~electric_sheep.model` holds the VAEs, :mod:`~electric_sheep.train` trains
them, :mod:`~electric_sheep.evaluate` measures them; the ``sheep`` CLI is a thin layer on top.
Nothing heavy is imported here, so ``import electric_sheep`` is instant.
"""

__version__ = "0.1.0"
