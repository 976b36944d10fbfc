"""LoRA: low-rank adapters for Dense and Conv kernels, as a params transform.

Low-rank adaptation (Hu et al., 2022) freezes a pretrained kernel ``W`` and
learns a low-rank change::

    W' = W + (alpha / r) * reshape(A @ B, W.shape),
    A: (fan_in, r),  B: (r, fan_out),  B initialised to 0 (so W' = W at start).

For a Dense kernel ``(in, out)``, ``fan_in = in``. For a Conv kernel in flax's
HWIO layout ``(kh, kw, cin, cout)``, the kernel is seen as the
``(kh*kw*cin, cout)`` matrix that im2col convolution multiplies by, so
``fan_in = kh*kw*cin`` and the change has rank at most ``r`` in that view
(the conv-LoRA of several PEFT libraries).

Rather than a wrapped module, LoRA here is a transformation of the parameter
tree, so it works on any flax model without changing it:

* :func:`lora_targets` picks the kernels by regexes over their paths;
* :func:`init_lora` creates ``{"<module path>": {"kernel": {"a", "b"}}}``,
  a tree mirroring the model's, for those kernels only;
* :func:`merge_lora` returns the model params with ``W'`` in place of ``W``;
  the network is then applied as usual (``model.apply``).

The trainable factors live under ``params["lora"]`` and the base weights under
``params["model"]`` are frozen by a fine-tuning rule (``lr_mults``), see
:func:`tlax.methods.conservative.lora`. :func:`num_lora_params` counts what
is trained.

References:
  Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang, Chen. LoRA: Low-rank adaptation
  of large language models. ICLR 2022.
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp

from tlax.transfer import params as paths

Array = jax.Array
PyTree = Any

DEFAULT_TARGETS = (r"kernel$",)
DEFAULT_EXCLUDE = (r"^head/",)


def lora_targets(model_params: PyTree,
                 targets: Sequence[str] = DEFAULT_TARGETS,
                 exclude: Sequence[str] = DEFAULT_EXCLUDE) -> list[str]:
  """Paths (relative to the model params) of the kernels to adapt.

  A leaf is adapted when its path matches a ``targets`` regex, none of the
  ``exclude`` regexes, and it is 2-D (Dense) or 4-D (Conv, HWIO).
  """
  out = []
  for path, leaf in paths.flatten(model_params).items():
    if jnp.ndim(leaf) not in (2, 4):
      continue
    if not any(re.search(p, path) for p in targets):
      continue
    if any(re.search(p, path) for p in exclude):
      continue
    out.append(path)
  return out


def _fans(shape) -> tuple[int, int]:
  fan_out = int(shape[-1])
  fan_in = 1
  for s in shape[:-1]:
    fan_in *= int(s)
  return fan_in, fan_out


def init_lora(rng: Array, model_params: PyTree, targets: Sequence[str],
              rank: int) -> dict:
  """LoRA factors for the kernels at ``targets`` (paths in ``model_params``).

  ``A`` is drawn from N(0, 1/fan_in), ``B`` is zero, so the merged network
  equals the base network at initialisation.

  Returns:
    Nested dicts mirroring the model's paths: for target ``"Conv_0/kernel"``,
    ``out["Conv_0"]["kernel"] == {"a": (fan_in, r), "b": (r, fan_out)}``.
  """
  if rank < 1:
    raise ValueError(f"LoRA rank must be >= 1, got {rank}.")
  flat = paths.flatten(model_params)
  missing = [t for t in targets if t not in flat]
  if missing:
    raise KeyError(f"LoRA targets not in the model params: {missing}")
  factors = {}
  for i, path in enumerate(targets):
    w = flat[path]
    fan_in, fan_out = _fans(w.shape)
    key = jax.random.fold_in(rng, i)
    a = jax.random.normal(key, (fan_in, rank), jnp.float32) / jnp.sqrt(fan_in)
    factors[f"{path}/a"] = a.astype(w.dtype)
    factors[f"{path}/b"] = jnp.zeros((rank, fan_out), w.dtype)
  return paths.unflatten(factors)


def lora_delta(a: Array, b: Array, shape, scale: float | Array) -> Array:
  """``scale * reshape(a @ b, shape)``."""
  return (scale * (a @ b)).reshape(shape)


def merge_lora(model_params: PyTree, lora_params: Mapping[str, Any],
               *, alpha: float | Array, rank: int) -> PyTree:
  """The model params with every adapted kernel ``W`` replaced by ``W'``.

  Args:
    model_params: the base (frozen) model parameters.
    lora_params: the tree from :func:`init_lora`.
    alpha: the LoRA scale numerator; the change is multiplied by
      ``alpha / rank`` (may be a traced scalar).
    rank: the rank ``r`` the factors were created with.
  """
  if not lora_params:
    return model_params
  flat_lora = paths.flatten(lora_params)
  pairs = {p[:-2] for p in flat_lora if p.endswith("/a")}
  scale = alpha / rank

  def merge(path, w):
    p = paths.path_str(path)
    if p not in pairs:
      return w
    d = lora_delta(flat_lora[p + "/a"], flat_lora[p + "/b"], w.shape, scale)
    return w + d.astype(w.dtype)

  merged = jax.tree_util.tree_map_with_path(merge, model_params)
  known = set(paths.flatten(model_params))
  unknown = sorted(pairs - known)
  if unknown:
    raise KeyError(f"LoRA factors for kernels not in the model: {unknown}")
  return merged


def num_lora_params(lora_params: PyTree) -> int:
  """Number of trainable LoRA parameters."""
  return int(sum(jnp.size(x) for x in jax.tree_util.tree_leaves(lora_params)))
