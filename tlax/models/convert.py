"""Pretrained weights researchers already have, converted to tlax backbones.

Reads a weight file into flat NumPy tensors, renames and transposes them to
the flax layout of :mod:`tlax.models.resnet_tv` or :mod:`tlax.models.vit`,
and loads them into a model's variables *strictly*, with the rules of
:func:`tlax.train.finetune.merge_params`: every tensor is checked by name and
shape, every model variable the file lacks and every tensor the model has no
place for is named, and nothing loads silently by halves.

Files (:func:`read_tensors`; no heavy dependency at run time):

* ``.safetensors`` (torchvision / timm weights saved with
  ``safetensors.torch.save_file``), read with the ``safetensors`` package,
  NumPy only;
* ``.pth`` / ``.pt`` / ``.bin`` PyTorch state dicts, when torch is installed
  (``{"state_dict": ...}`` and ``{"model": ...}`` wrappers and the
  ``module.`` prefix of ``DataParallel`` are accepted);
* flax checkpoints: ``.npz`` (the ViT AugReg / big_vision release),
  ``.msgpack`` (``flax.serialization``), and orbax checkpoint folders.

Layouts (:data:`LAYOUTS`, detected from the names with ``layout="auto"``):

* ``"torchvision_resnet"``: ``conv1.weight``, ``layer1.0.bn1.running_mean``,
  ``layer2.0.downsample.0.weight``, ``fc.weight``; TLlib's
  ``backbone.``/``bottleneck.0``/``bottleneck.1``/``head`` classifiers too.
  Convolutions ``(O, I, kh, kw) -> (kh, kw, I, O)``, linear layers
  transposed, BatchNorm ``weight, bias -> scale, bias`` (params) and
  ``running_mean, running_var -> mean, var`` (``batch_stats``);
  ``num_batches_tracked`` (a counter, no weight) is skipped.
* ``"timm_vit"``: ``patch_embed.proj.weight``, ``cls_token``, ``pos_embed``,
  ``blocks.<i>.attn.qkv.weight``, ... ``head.weight``; the fused ``qkv``
  projection is split into the query, key and value kernels
  ``(D, heads, D / heads)``.
* ``"vit_flax"``: the flax ViT names (the AugReg ``.npz`` files) as they
  are; big_vision's own names (``MultiHeadDotProductAttention_0``,
  ``MlpBlock_0``, a top-level ``pos_embedding`` without a class-token slot)
  are renamed.
* ``"flax"``: any tlax model's own variables (``params/...`` and
  ``batch_stats/...``, or a bare params tree), as saved by
  :func:`save_variables`.

Loading into a model (:func:`load_weights`): paths are matched as
``model/<module>/<param>`` (the trainer's fine-tuning paths); the default
``reinit`` keeps the fresh ``head`` and ``bottleneck`` (an ImageNet head has
1000 classes).
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, Sequence

import numpy as np

from tlax.train import finetune

PyTree = Any

LAYOUTS = ("torchvision_resnet", "timm_vit", "vit_flax", "flax")
DEFAULT_REINIT = ("^model/head/", "^model/bottleneck")
# Tensors that hold no weight: skipped by name (and named in the log).
_COUNTERS = re.compile(r"(^|\.)num_batches_tracked$")


class WeightFileError(ValueError):
  """A weight file cannot be read or does not fit the model."""


# ---------------------------------------------------------------------------
# Reading files.
# ---------------------------------------------------------------------------
def _flatten_nested(tree, prefix="") -> dict[str, Any]:
  out = {}
  if isinstance(tree, Mapping):
    for k, v in tree.items():
      out.update(_flatten_nested(v, f"{prefix}/{k}" if prefix else str(k)))
  else:
    out[prefix] = tree
  return out


def _read_torch(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise WeightFileError(
        f"{path} is a PyTorch file and torch is not installed. Install torch, "
        "or convert it once where torch is: `import torch, safetensors.torch; "
        "safetensors.torch.save_file({k: v.float().contiguous() for k, v in "
        "torch.load(PATH, map_location='cpu').items()}, 'weights.safetensors')`"
        " and pass the .safetensors file.") from None
  try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise WeightFileError(f"Cannot read {path} with torch.load: {e}") from e
  for key in ("state_dict", "model", "model_state_dict"):
    if isinstance(obj, Mapping) and key in obj and isinstance(obj[key],
                                                             Mapping):
      obj = obj[key]
  if not isinstance(obj, Mapping):
    raise WeightFileError(f"{path} holds a {type(obj).__name__}, not a state "
                          "dict (save model.state_dict()).")
  out = {}
  for k, v in _flatten_nested(obj).items():
    if not hasattr(v, "detach"):
      raise WeightFileError(f"{path}: entry {k!r} is a {type(v).__name__}, "
                            "not a tensor.")
    v = v.detach().cpu()
    if v.dtype == torch.bfloat16:
      v = v.float()
    out[k] = v.numpy()
  return out


def _read_safetensors(path: str) -> dict[str, np.ndarray]:
  try:
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise WeightFileError(f"Reading {path} needs the safetensors package "
                          "(pip install safetensors).") from None
  try:
    return dict(load_file(path))
  except Exception as e:  # pylint: disable=broad-except
    raise WeightFileError(
        f"Cannot read {path} as a safetensors file: {e}. (bfloat16 tensors "
        "have no NumPy type: save them as float32.)") from e


def _read_msgpack(path: str) -> dict[str, np.ndarray]:
  from flax import serialization  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    try:
      tree = serialization.msgpack_restore(f.read())
    except Exception as e:  # pylint: disable=broad-except
      raise WeightFileError(f"Cannot read {path} as a flax msgpack "
                            f"checkpoint: {e}") from e
  return {k: np.asarray(v) for k, v in _flatten_nested(tree).items()}


def _read_orbax(path: str) -> dict[str, np.ndarray]:
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  try:
    tree = ocp.PyTreeCheckpointer().restore(os.path.abspath(path))
  except Exception as e:  # pylint: disable=broad-except
    raise WeightFileError(f"Cannot read {path} as an orbax checkpoint: "
                          f"{e}") from e
  return {k: np.asarray(v) for k, v in _flatten_nested(tree).items()}


def read_tensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """``{name: array}`` of a weight file (see the module docstring).

  Names are the file's own: torch state-dict keys (``layer1.0.conv1.weight``)
  or ``/``-joined flax paths (``Transformer/encoder_norm/scale``).

  Raises:
    FileNotFoundError: no such file.
    WeightFileError: an unknown extension or an unreadable file (the message
      names the file and the fix).
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"No weight file at {path}.")
  if os.path.isdir(path):
    return _read_orbax(path)
  ext = os.path.splitext(path)[1].lower()
  if ext == ".safetensors":
    return _read_safetensors(path)
  if ext in (".pth", ".pt", ".bin", ".ckpt"):
    return _read_torch(path)
  if ext == ".npz":
    try:
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
    except Exception as e:  # pylint: disable=broad-except
      raise WeightFileError(f"Cannot read {path} as .npz: {e}") from e
  if ext == ".msgpack":
    return _read_msgpack(path)
  raise WeightFileError(
      f"Unknown weight file type {ext!r} ({path}); use .safetensors, "
      ".pth/.pt/.bin (torch), .npz, .msgpack, or an orbax checkpoint folder.")


def save_variables(path: str | os.PathLike, variables: Mapping[str, Any]
                   ) -> None:
  """Writes flax ``variables`` (``params``, ``batch_stats``) as ``.npz``
  (layout ``"flax"``)."""
  flat = {k: np.asarray(v) for k, v in _flatten_nested(dict(variables)).items()}
  np.savez(os.fspath(path), **flat)


# ---------------------------------------------------------------------------
# Layouts.
# ---------------------------------------------------------------------------
def detect_layout(tensors: Mapping[str, Any]) -> str:
  """The layout of a file's tensor names (:data:`LAYOUTS`)."""
  names = [_strip_torch_prefix(k) for k in tensors]
  if any(n.startswith("patch_embed.") for n in names):
    return "timm_vit"
  if any(re.match(r"layer\d+\.\d+\.", n) for n in names) or "conv1.weight" \
      in names:
    return "torchvision_resnet"
  if any("encoderblock" in k for k in tensors):
    return "vit_flax"
  if any("/" in k for k in tensors):
    return "flax"
  raise WeightFileError(
      "Cannot tell the layout of the tensors (first names: "
      f"{', '.join(list(tensors)[:5])}); expected a torchvision ResNet, a "
      "timm ViT or a flax checkpoint. Pass layout= explicitly.")


def _strip_torch_prefix(name: str) -> str:
  for p in ("module.", "backbone."):
    if name.startswith(p):
      name = name[len(p):]
  return name


def describe(tensors: Mapping[str, Any], layout: str) -> str:
  """A short description of the network a file holds (for error messages)."""
  try:
    if layout == "torchvision_resnet":
      names = [_strip_torch_prefix(k) for k in tensors]
      blocks = []
      for s in range(1, 5):
        idx = {int(m.group(1)) for n in names
               if (m := re.match(rf"layer{s}\.(\d+)\.", n))}
        blocks.append(len(idx))
      kind = ("bottleneck" if any(".conv3." in n for n in names)
              else "basic")
      depth = {("basic", (2, 2, 2, 2)): 18, ("basic", (3, 4, 6, 3)): 34,
               ("bottleneck", (3, 4, 6, 3)): 50,
               ("bottleneck", (3, 4, 23, 3)): 101}.get((kind, tuple(blocks)))
      return (f"a ResNet{'-' + str(depth) if depth else ''} with {kind} "
              f"blocks {tuple(blocks)}")
    if layout == "timm_vit":
      depth = len({n.split(".")[1] for n in tensors
                   if n.startswith("blocks.")})
      pe = tensors.get("patch_embed.proj.weight")
      return (f"a ViT with {depth} blocks, width {pe.shape[0]}, patch "
              f"{pe.shape[-1]}" if pe is not None else "a ViT")
  except Exception:  # pylint: disable=broad-except
    pass
  return f"a {layout} network"


def _conv(w):
  return np.transpose(w, (2, 3, 1, 0))


def _check_ndim(name, w, ndim, path):
  if w.ndim != ndim:
    raise WeightFileError(f"{path}: tensor {name!r} has shape {w.shape}; a "
                          f"{ndim}-D tensor was expected there.")


def _torchvision_resnet(tensors, path):
  """``({flax path: array} params, batch_stats, {flax path: source name})``."""
  params, stats, source, unmapped = {}, {}, {}, []
  for name, w in tensors.items():
    n = _strip_torch_prefix(name)
    n = re.sub(r"^layer(\d+)\.(\d+)\.", r"layer\1_\2/", n)
    n = n.replace("downsample.0.", "downsample_conv.")
    n = n.replace("downsample.1.", "downsample_bn.")
    n = re.sub(r"^fc\.", "head.", n)
    n = re.sub(r"^bottleneck\.0\.", "bottleneck.", n)
    n = re.sub(r"^bottleneck\.1\.", "bottleneck_bn.", n)
    module, _, leaf = n.rpartition(".")
    module = module.replace(".", "/")
    is_bn = bool(re.search(r"(^|/)(bn\d|downsample_bn|bottleneck_bn)$",
                           module))
    if is_bn and leaf in ("weight", "bias"):
      _check_ndim(name, w, 1, path)
      dst, key = params, f"{module}/{'scale' if leaf == 'weight' else 'bias'}"
    elif is_bn and leaf in ("running_mean", "running_var"):
      _check_ndim(name, w, 1, path)
      dst, key = stats, f"{module}/{'mean' if leaf == 'running_mean' else 'var'}"
    elif leaf == "weight" and w.ndim == 4:
      dst, key, w = params, f"{module}/kernel", _conv(w)
    elif leaf == "weight" and module in ("head", "bottleneck"):
      _check_ndim(name, w, 2, path)
      dst, key, w = params, f"{module}/kernel", w.T
    elif leaf == "bias" and module in ("head", "bottleneck"):
      dst, key = params, f"{module}/bias"
    else:
      unmapped.append(name)
      continue
    dst[key] = w
    source[("batch_stats/" if dst is stats else "params/") + key] = name
  return params, stats, source, unmapped


def _timm_vit(tensors, path, num_heads):
  params, source, unmapped = {}, {}, []

  def put(key, value, name):
    params[key] = value
    source["params/" + key] = name

  for name, w in tensors.items():
    n = _strip_torch_prefix(name)
    m = re.match(r"blocks\.(\d+)\.(.+)$", n)
    if n == "cls_token":
      put("cls", w, name)
    elif n == "pos_embed":
      put("Transformer/posembed_input/pos_embedding", w, name)
    elif n == "patch_embed.proj.weight":
      _check_ndim(name, w, 4, path)
      put("embedding/kernel", _conv(w), name)
    elif n == "patch_embed.proj.bias":
      put("embedding/bias", w, name)
    elif n in ("norm.weight", "norm.bias"):
      put("Transformer/encoder_norm/" + ("scale" if n.endswith("weight")
                                         else "bias"), w, name)
    elif n in ("head.weight", "head.bias") or re.match(
        r"bottleneck\.[01]\.", n):
      # the bottleneck head of a fine-tuned classifier (TLlib layout)
      mod, _, leaf = n.rpartition(".")
      mod = {"head": "head", "bottleneck.0": "bottleneck",
             "bottleneck.1": "bottleneck_bn"}[mod]
      if mod == "bottleneck_bn":
        if leaf in ("running_mean", "running_var"):
          continue  # BatchNorm statistics of a bottleneck: see below
        put(f"{mod}/{'scale' if leaf == 'weight' else 'bias'}", w, name)
      else:
        put(f"{mod}/{'kernel' if leaf == 'weight' else 'bias'}",
            w.T if leaf == "weight" else w, name)
    elif m:
      i, rest = m.group(1), m.group(2)
      blk = f"Transformer/encoderblock_{i}"
      ln = {"norm1": "LayerNorm_0", "norm2": "LayerNorm_2"}
      mod, _, leaf = rest.rpartition(".")
      if mod in ln:
        put(f"{blk}/{ln[mod]}/{'scale' if leaf == 'weight' else 'bias'}", w,
            name)
      elif mod in ("mlp.fc1", "mlp.fc2"):
        dense = "Dense_0" if mod == "mlp.fc1" else "Dense_1"
        put(f"{blk}/MlpBlock_3/{dense}/" + ("kernel" if leaf == "weight"
                                            else "bias"),
            w.T if leaf == "weight" else w, name)
      elif mod == "attn.qkv":
        d = w.shape[-1] if leaf == "weight" else w.shape[0] // 3
        if d % num_heads:
          raise WeightFileError(f"{path}: tensor {name!r} of width {d} does "
                                f"not split into {num_heads} heads.")
        hd = d // num_heads
        att = f"{blk}/MultiHeadDotProductAttention_1"
        for j, part in enumerate(("query", "key", "value")):
          if leaf == "weight":
            _check_ndim(name, w, 2, path)
            put(f"{att}/{part}/kernel",
                w[j * d:(j + 1) * d].T.reshape(d, num_heads, hd), name)
          else:
            put(f"{att}/{part}/bias",
                w[j * d:(j + 1) * d].reshape(num_heads, hd), name)
      elif mod == "attn.proj":
        att = f"{blk}/MultiHeadDotProductAttention_1/out"
        if leaf == "weight":
          _check_ndim(name, w, 2, path)
          d = w.shape[0]
          put(f"{att}/kernel", w.T.reshape(num_heads, d // num_heads, d),
              name)
        else:
          put(f"{att}/bias", w, name)
      else:
        unmapped.append(name)
    else:
      unmapped.append(name)
  stats = {}
  for leaf, key in (("running_mean", "mean"), ("running_var", "var")):
    for name in tensors:
      if _strip_torch_prefix(name) == f"bottleneck.1.{leaf}":
        stats[f"bottleneck_bn/{key}"] = tensors[name]
        source[f"batch_stats/bottleneck_bn/{key}"] = name
  return params, stats, source, unmapped


_BIG_VISION_RENAMES = (("MultiHeadDotProductAttention_0",
                        "MultiHeadDotProductAttention_1"),
                       ("/LayerNorm_1/", "/LayerNorm_2/"),
                       ("MlpBlock_0", "MlpBlock_3"))


def _vit_flax(tensors, path):
  params, source = {}, {}
  flat = {re.sub(r"^(params/|opt/target/|target/)", "", k): (k, v)
          for k, v in tensors.items()}
  big_vision = any("MlpBlock_0" in k for k in flat)
  for key, (name, w) in flat.items():
    new = key
    if big_vision:
      for a, b in _BIG_VISION_RENAMES:
        new = new.replace(a, b)
      if new == "pos_embedding":
        new = "Transformer/posembed_input/pos_embedding"
        if "cls" in flat:  # big_vision adds the class token after the posemb
          w = np.concatenate([np.zeros_like(w[:, :1]), w], axis=1)
    params[new] = w
    source["params/" + new] = name
  return params, {}, source, []


def _flax(tensors, path):
  params, stats, source = {}, {}, {}
  has_collections = any(k.startswith(("params/", "batch_stats/"))
                        for k in tensors)
  for name, w in tensors.items():
    if has_collections:
      coll, _, key = name.partition("/")
      if coll not in ("params", "batch_stats"):
        raise WeightFileError(f"{path}: tensor {name!r} is in collection "
                              f"{coll!r}; expected params or batch_stats.")
    else:
      coll, key = "params", name
    (params if coll == "params" else stats)[key] = w
    source[f"{coll}/{key}"] = name
  return params, stats, source, []


def convert(tensors: Mapping[str, np.ndarray], layout: str = "auto", *,
            num_heads: int | None = None, path: str = "<tensors>"
            ) -> tuple[dict, dict, dict[str, str]]:
  """Renames and transposes ``tensors`` to the flax layout.

  Args:
    tensors: ``{name: array}`` (:func:`read_tensors`).
    layout: one of :data:`LAYOUTS` or ``"auto"`` (:func:`detect_layout`).
    num_heads: attention heads (``"timm_vit"``, which fuses q, k, v).
    path: the file, for error messages.

  Returns:
    ``(params, batch_stats, source)``: nested dicts of arrays, and the source
    tensor name of every converted ``params/...`` / ``batch_stats/...`` path.

  Raises:
    WeightFileError: a tensor that is not floating point (other than
      BatchNorm's ``num_batches_tracked`` counter), a tensor the layout has no
      place for, a tensor of the wrong rank; the message names the file and
      the tensors.
  """
  if layout == "auto":
    layout = detect_layout(tensors)
  if layout not in LAYOUTS:
    raise ValueError(f"Unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}"
                     " or 'auto'.")
  kept, bad = {}, []
  for name, w in tensors.items():
    if _COUNTERS.search(name):
      continue
    w = np.asarray(w)
    if not np.issubdtype(w.dtype, np.floating):
      bad.append(f"{name!r} ({w.dtype}, shape {w.shape})")
      continue
    kept[name] = w
  if bad:
    raise WeightFileError(
        f"{path}: non-floating-point tensor(s) {', '.join(bad)}; weights must "
        "be float (a quantised or integer checkpoint cannot be loaded).")
  if layout == "torchvision_resnet":
    out = _torchvision_resnet(kept, path)
  elif layout == "timm_vit":
    if not num_heads:
      raise WeightFileError(
          f"{path} holds {describe(tensors, layout)} (layout timm_vit), and "
          "the model has no attention layers to load it into (a ViT's fused "
          "qkv projection needs the model's number of heads).")
    out = _timm_vit(kept, path, int(num_heads))
  elif layout == "vit_flax":
    out = _vit_flax(kept, path)
  else:
    out = _flax(kept, path)
  params, stats, source, unmapped = out
  if unmapped:
    raise WeightFileError(
        f"{path} ({describe(tensors, layout)}, layout {layout}): "
        f"{len(unmapped)} tensor(s) have no place in that layout: "
        f"{', '.join(unmapped[:20])}{' ...' if len(unmapped) > 20 else ''}. "
        "Is this the weight file of another architecture?")
  return (finetune.unflatten(params), finetune.unflatten(stats), source)


# ---------------------------------------------------------------------------
# Loading into a model.
# ---------------------------------------------------------------------------
def _num_heads(params: Mapping[str, Any]) -> int | None:
  for path, leaf in finetune.flatten(params).items():
    if path.endswith("query/kernel") and np.ndim(leaf) == 3:
      return int(np.shape(leaf)[1])
  return None


def _with_sources(message: str, source: Mapping[str, str]) -> str:
  """Appends the file's own tensor name to each converted path in a
  :func:`merge_params` message."""
  lines = []
  for line in message.split("\n"):
    m = re.search(r" model/(\S+)", line)
    if m:
      path = m.group(1).rstrip(":")
      for coll in ("params/", "batch_stats/"):
        if coll + path in source:
          line += f"  [file tensor {source[coll + path]!r}]"
          break
    lines.append(line)
  return "\n".join(lines)


def load_weights(path: str | os.PathLike, variables: Mapping[str, Any], *,
                 layout: str = "auto",
                 reinit: Sequence[str] = DEFAULT_REINIT,
                 allow_missing: Sequence[str] = (),
                 allow_unexpected: Sequence[str] = (),
                 log: bool = True) -> dict:
  """``variables`` of a model with the weights of ``path`` loaded, strictly.

  Args:
    path: a weight file (:func:`read_tensors`).
    variables: the model's freshly initialised variables (``{"params": ...,
      "batch_stats": ...}``, as ``model.init`` returns them).
    layout: :data:`LAYOUTS` or ``"auto"``.
    reinit, allow_missing, allow_unexpected: regexes over the paths
      ``model/<module>/.../<leaf>`` (BatchNorm statistics without their
      collection name), as :func:`tlax.train.finetune.merge_params`; by
      default the ``head`` and the ``bottleneck`` keep their initialisation.
    log: log every re-initialised or skipped variable.

  Returns:
    New variables with the structure of ``variables``.

  Raises:
    WeightFileError: the file cannot be read or converted, or does not match
      the model (every missing, unexpected and mis-shaped tensor is listed,
      with the file's own tensor names).
  """
  path = os.fspath(path)
  tensors = read_tensors(path)
  if layout == "auto":
    layout = detect_layout(tensors)
  params, stats, source = convert(
      tensors, layout, num_heads=_num_heads(variables.get("params", {})),
      path=path)
  kw = dict(reinit=tuple(reinit), allow_missing=tuple(allow_missing),
            allow_unexpected=tuple(allow_unexpected), log=log)
  out, errors = dict(variables), []
  init_stats = variables.get("batch_stats", {}) or {}
  for coll, loaded, init in (("params", params, variables["params"]),
                             ("batch_stats", stats, init_stats)):
    if coll == "batch_stats" and not (stats or init_stats):
      continue
    try:
      out[coll] = finetune.merge_params(loaded, init, prefix="model",
                                        what=coll, **kw)
    except finetune.CheckpointMismatchError as e:
      errors.append(_with_sources(str(e), source))
  if errors:
    raise WeightFileError(
        f"{path} ({describe(tensors, layout)}, layout {layout}) does not "
        "match the model:\n" + "\n".join(errors)) from None
  return out


def load_into_state(config, params: PyTree, state: PyTree, *,
                    log: bool = True) -> tuple[PyTree, PyTree]:
  """Loads ``config.model.pretrained`` into a run's ``params["model"]`` and
  ``state["model"]`` (a no-op when it is empty or absent).

  Config fields (``config.model``): ``pretrained`` (a weight file),
  ``pretrained_layout`` (default ``"auto"``), ``pretrained_reinit`` (default
  :data:`DEFAULT_REINIT`), ``pretrained_allow_missing``,
  ``pretrained_allow_unexpected``.
  """
  model_cfg = config.get("model") if hasattr(config, "get") else None
  weights = (model_cfg.get("pretrained", "") if model_cfg is not None
             else "") or ""
  if not weights:
    return params, state
  variables = {"params": params["model"], **(state.get("model") or {})}
  reinit = model_cfg.get("pretrained_reinit", None)
  new = load_weights(
      weights, variables,
      layout=model_cfg.get("pretrained_layout", "auto") or "auto",
      reinit=DEFAULT_REINIT if reinit is None else tuple(reinit),
      allow_missing=tuple(model_cfg.get("pretrained_allow_missing", ()) or ()),
      allow_unexpected=tuple(
          model_cfg.get("pretrained_allow_unexpected", ()) or ()),
      log=log)
  params = {**params, "model": new.pop("params")}
  state = {**state, "model": {**(state.get("model") or {}), **new}}
  return params, state
