"""The losses of :mod:`unifocal.losses` for Keras 3 (JAX, TensorFlow and PyTorch backends).

Optional: ``pip install "unifocal[keras]"`` plus one backend (``jax``, ``tensorflow`` or ``torch``);
set ``KERAS_BACKEND`` before the first ``import keras``. Nothing else in :mod:`unifocal` imports
Keras, and this package imports no torch (unless torch is the chosen backend): the losses are the
framework-neutral descriptions of :mod:`unifocal.spec`, evaluated with ``keras.ops``. Every loss agrees with its torch counterpart to float64
precision (values and gradients). See ``docs/keras.md``.

Shapes (``data_format="channels_last"``, the default; ``"channels_first"`` moves the class axis to 1)
---------------------------------------------------------------------------------------------------
``y_pred``
    ``(B, *spatial, C)`` with 1-3 spatial dims: probabilities (``from_logits=False``, the default, as
    Keras's own losses; e.g. a softmax output) or logits (``from_logits=True``). ``C == 1`` is a
    binary sigmoid output, treated as the two classes ``[1 - p, p]``. Probabilities are clipped to
    ``[1e-7, 1 - 1e-7]`` wherever a logarithm is taken and inside the Focal Tversky family, as the
    authors' code does.
``y_true``
    integer labels ``(B, *spatial)`` or ``(B, *spatial, 1)`` (Keras passes them as floats; they must
    hold whole numbers in ``[0, K)``, ``K = max(C, 2)``, or ``ignore_index``), or one-hot / soft labels
    ``(B, *spatial, C)``; for ``C == 1`` a ``(B, *spatial, 1)`` target is the foreground probability
    (labels when ``ignore_index`` is set).

Common keyword arguments (every loss)
-------------------------------------
``from_logits``, ``data_format``, and as for the torch losses (``docs/losses.md``): ``rare_classes``,
``background``, ``ignore_index``, ``batch``, ``smooth``, ``validate`` (``False`` skips the checks that
read tensor values). Not ported yet: ``multilabel`` and ``include_background``. The classes also take Keras's ``reduction``
(default ``"sum_over_batch_size"``), ``name`` and ``dtype`` (the computation dtype, default float32).

Example:
    >>> import numpy as np
    >>> from unifocal.keras import UnifiedFocalLoss
    >>> rng = np.random.default_rng(0)
    >>> y_pred = rng.dirichlet(np.ones(2), size=(2, 8, 8)).astype("float32")   # (B, H, W, C)
    >>> y_true = rng.integers(0, 2, size=(2, 8, 8))                            # labels (B, H, W)
    >>> bool(np.isfinite(float(UnifiedFocalLoss()(y_true, y_pred))))
    True
"""

from unifocal.keras.losses import *  # noqa: F403  (every loss, by the names of unifocal.spec.LOSSES)
from unifocal.keras.losses import __all__  # noqa: F401
