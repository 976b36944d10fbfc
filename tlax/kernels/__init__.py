"""Opt-in CPU speed-ups: convolution forms and native C++ kernels.

Nothing here is imported by default: models use them only when asked
(``conv_impl`` other than ``"xla"``, :mod:`tlax.models.layers`), and the C++
source is compiled on first use of :mod:`tlax.kernels.native` only.

* :mod:`tlax.kernels.conv`: :class:`~tlax.kernels.conv.Conv` with im2col,
  patch-matmul, Winograd and native conv + pool forms, and the ``"auto"``
  rule that picks one by the backend and the layer's shape.
* :mod:`tlax.kernels.native`: the XLA FFI custom calls (``conv_pool``,
  ``bmm``); ``vmap_method="sequential"``: vmapped, they loop over runs.
"""
