"""Refiner models, one per module, found through the registry (:mod:`graphrepair.models.registry`).

* ``guided_unet``: :class:`~graphrepair.models.guided_unet.GuidedIterativeGraphUNet` (5 features +
  cross-attention to per-test feedback; Exp 3, 3b, 3c, 3d);
* ``iterative_unet``: :class:`~graphrepair.models.iterative_unet.IterativeGraphUNet` (6 features
  with a per-node test signal; Exp 1, 2, 4).

:func:`build_model` and :func:`from_checkpoint` are the only ways to obtain a model.
"""

from graphrepair.models.registry import (
    LoadedRefiner,
    build_model,
    from_checkpoint,
    model_names,
    model_variant,
    register,
)

__all__ = ["LoadedRefiner", "build_model", "from_checkpoint", "model_names", "model_variant",
           "register"]
