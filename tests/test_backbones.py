"""ImageNet backbones and their weight converters (tlax.models.resnet_tv,
tlax.models.vit, tlax.models.convert).

The fixtures in tests/fixtures/backbones are written by
experiments/make_backbone_fixtures.py with torch: small torchvision ResNets
and a small timm ViT with random weights, and their eval-mode outputs. The
converted flax models must compute the same outputs, without torch here.
"""

import json
import os
import pathlib

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from tlax import models
from tlax.models import convert
from tlax.models import preprocess
from tlax.models.resnet_tv import TorchvisionResNet
from tlax.models.vit import VisionTransformer

FIX = pathlib.Path(__file__).parent / "fixtures" / "backbones"
# RBG keys: XLA compiles their random bits much faster than threefry's.
KEY = jax.random.key(0, impl="rbg")
TOL = dict(rtol=1e-4, atol=1e-4)

TINY = {
    "resnet18_tiny": lambda: TorchvisionResNet(
        num_classes=5, depth=18, widths=(4, 8, 8, 16), stem_width=8),
    "resnet50_tiny": lambda: TorchvisionResNet(
        num_classes=5, depth=50, widths=(4, 8, 8, 8), stem_width=8),
    "vit_tiny": lambda: VisionTransformer(
        num_classes=5, patch_size=8, hidden_size=32, depth=2, num_heads=4,
        mlp_dim=128),
}


def _init(model, size=32):
  return jax.jit(model.init)({"params": KEY}, jnp.zeros((1, size, size, 3)))


def _template(model, size=32):
  """The model's variables as shapes (no compilation): a strict load with
  nothing re-initialised replaces every leaf."""
  return jax.eval_shape(lambda x: model.init({"params": KEY}, x),
                        jnp.zeros((1, size, size, 3)))


def _outputs(model, variables, x):
  logits, feats = jax.jit(lambda v, x: model.apply(v, x))(variables, x)
  return np.asarray(logits), np.asarray(feats["pool"])


@pytest.fixture(scope="module")
def tiny():
  """name -> (model, fresh variables, reference io)."""
  out = {}
  for name, ctor in TINY.items():
    model = ctor()
    out[name] = (model, _template(model),
                 load_file(FIX / f"{name}_io.safetensors"))
  return out


# ---------------------------------------------------------------------------
# Numerical equality with PyTorch.

@pytest.mark.parametrize("name", list(TINY))
def test_converted_outputs_equal_pytorch(tiny, name):
  model, variables, io = tiny[name]
  loaded = convert.load_weights(FIX / f"{name}.safetensors", variables,
                                reinit=())
  logits, pool = _outputs(model, loaded, io["x"])
  np.testing.assert_allclose(pool, io["pool"], **TOL)
  np.testing.assert_allclose(logits, io["logits"], **TOL)


def test_pth_state_dict_when_torch_is_installed(tiny, tmp_path):
  torch = pytest.importorskip("torch")
  sd = {k: torch.from_numpy(v.copy()) for k, v in
        load_file(FIX / "resnet18_tiny.safetensors").items()}
  path = tmp_path / "r18.pth"
  torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)
  model, variables, io = tiny["resnet18_tiny"]
  loaded = convert.load_weights(path, variables, reinit=())
  np.testing.assert_allclose(_outputs(model, loaded, io["x"])[0],
                             io["logits"], **TOL)


def test_pth_without_torch_says_how_to_convert(monkeypatch, tmp_path):
  import builtins  # pylint: disable=g-import-not-at-top
  real_import = builtins.__import__

  def no_torch(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
      raise ImportError("no torch")
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_torch)
  path = tmp_path / "w.pth"
  path.write_bytes(b"x")
  with pytest.raises(convert.WeightFileError,
                     match=r"w\.pth is a PyTorch file.*safetensors"):
    convert.read_tensors(path)


# ---------------------------------------------------------------------------
# Flax checkpoints: .npz, .msgpack, orbax; the ViT release's names and
# big_vision's.

def _loaded(tiny, name):
  model, variables, io = tiny[name]
  return model, convert.load_weights(FIX / f"{name}.safetensors", variables,
                                     reinit=()), io


def test_flax_files_round_trip(tiny, tmp_path):
  model, loaded, io = _loaded(tiny, "resnet50_tiny")
  fresh = tiny["resnet50_tiny"][1]
  npz = tmp_path / "w.npz"
  convert.save_variables(npz, loaded)
  msgpack = tmp_path / "w.msgpack"
  msgpack.write_bytes(flax.serialization.msgpack_serialize(
      jax.tree.map(np.asarray, dict(loaded))))
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  orbax_dir = tmp_path / "orbax"
  ocp.PyTreeCheckpointer().save(orbax_dir, jax.tree.map(np.asarray,
                                                        dict(loaded)))
  for path in (npz, msgpack, orbax_dir):
    again = convert.load_weights(path, fresh, reinit=())
    np.testing.assert_allclose(_outputs(model, again, io["x"])[0],
                               io["logits"], **TOL)


def test_vit_release_npz_and_big_vision_names(tiny, tmp_path):
  model, loaded, io = _loaded(tiny, "vit_tiny")
  flat = {k: np.asarray(v) for k, v in
          convert.finetune.flatten(loaded["params"]).items()}
  # The ViT release's .npz: the flax names as they are.
  np.savez(tmp_path / "release.npz", **flat)
  assert convert.detect_layout(dict(np.load(tmp_path / "release.npz"))) \
      == "vit_flax"
  again = convert.load_weights(tmp_path / "release.npz", loaded, reinit=())
  np.testing.assert_allclose(_outputs(model, again, io["x"])[0],
                             io["logits"], **TOL)
  # big_vision: other module numbers, a position embedding without the class
  # token's slot (its class token gets none, i.e. a zero row).
  pe_key = "Transformer/posembed_input/pos_embedding"
  flat[pe_key] = flat[pe_key].copy()
  flat[pe_key][:, 0] = 0.0
  reference = convert.load_weights(
      tmp_path / "release.npz", loaded, reinit=())  # same names
  reference["params"] = convert.finetune.unflatten(
      {**convert.finetune.flatten(reference["params"]), pe_key:
       jnp.asarray(flat[pe_key])})
  bv = {}
  for k, v in flat.items():
    k2 = (k.replace("MultiHeadDotProductAttention_1",
                    "MultiHeadDotProductAttention_0")
          .replace("/LayerNorm_2/", "/LayerNorm_1/")
          .replace("MlpBlock_3", "MlpBlock_0"))
    if k == pe_key:
      k2, v = "pos_embedding", v[:, 1:]
    bv[f"params/{k2}"] = v
  np.savez(tmp_path / "big_vision.npz", **bv)
  got = convert.load_weights(tmp_path / "big_vision.npz", loaded, reinit=())
  np.testing.assert_allclose(_outputs(model, got, io["x"])[0],
                             _outputs(model, reference, io["x"])[0], **TOL)


# ---------------------------------------------------------------------------
# The full-size layouts, name by name.

@pytest.mark.parametrize("layout,model_name", [
    ("torchvision_resnet18", "resnet18_tv"),
    ("torchvision_resnet34", "resnet34_tv"),
    ("torchvision_resnet50", "resnet50_tv"),
    ("timm_vit_small_patch16_224", "vit_s16"),
    ("timm_vit_base_patch16_224", "vit_b16"),
])
def test_full_size_layouts_match_name_by_name(layout, model_name):
  with open(FIX / "layouts.json") as f:
    spec = json.load(f)["layouts"][layout]
  tensors = {k: np.broadcast_to(np.zeros((), np.dtype(dt)), shape)
             for k, (shape, dt) in spec.items()}
  model = models.get_model(model_name, 1000)
  variables = jax.eval_shape(
      lambda x: model.init({"params": KEY}, x), jnp.zeros((1, 224, 224, 3)))
  heads = 6 if model_name == "vit_s16" else 12
  params, stats, _ = convert.convert(tensors, num_heads=heads)
  want = {"params": variables["params"], "batch_stats":
          variables.get("batch_stats", {})}
  got = {"params": params, "batch_stats": stats}
  shapes = lambda t: {k: tuple(np.shape(v)) for k, v in
                      convert.finetune.flatten(t).items()}
  assert shapes(got) == shapes(want)


# ---------------------------------------------------------------------------
# Bad input: clear errors naming the file and the tensor.

def _write(tmp_path, tensors, name="w.safetensors"):
  path = tmp_path / name
  save_file(tensors, path)
  return path


def test_weights_of_another_architecture(tiny):
  _, variables, _ = tiny["resnet18_tiny"]
  with pytest.raises(convert.WeightFileError) as e:
    convert.load_weights(FIX / "resnet50_tiny.safetensors", variables)
  msg = str(e.value)
  assert "resnet50_tiny.safetensors" in msg
  assert "ResNet-50 with bottleneck blocks (3, 4, 6, 3)" in msg
  assert "unexpected in checkpoint: params model/layer1_0/conv3/kernel" in msg
  assert "'layer1.0.conv3.weight'" in msg
  # A ViT file for a ResNet: no tensor has a place.
  with pytest.raises(convert.WeightFileError, match=r"vit_tiny"):
    convert.load_weights(FIX / "vit_tiny.safetensors", variables)


def test_missing_and_extra_tensors_are_named(tiny, tmp_path):
  _, variables, _ = tiny["resnet18_tiny"]
  sd = load_file(FIX / "resnet18_tiny.safetensors")
  del sd["layer2.1.bn2.running_var"]
  sd["layer1.0.conv9.weight"] = np.zeros((4, 4, 3, 3), np.float32)
  path = _write(tmp_path, sd)
  with pytest.raises(convert.WeightFileError) as e:
    convert.load_weights(path, variables)
  msg = str(e.value)
  assert "missing in checkpoint: batch_stats model/layer2_1/bn2/var" in msg
  assert ("unexpected in checkpoint: params model/layer1_0/conv9/kernel"
          in msg and "'layer1.0.conv9.weight'" in msg)
  # ... and allowed by rules they load.
  convert.load_weights(path, variables, allow_missing=("bn2/var$",),
                       allow_unexpected=("conv9",))
  # A name the layout has no place for at all.
  sd = load_file(FIX / "resnet18_tiny.safetensors")
  sd["layer1.0.se.scale"] = np.zeros(3, np.float32)
  with pytest.raises(convert.WeightFileError,
                     match=r"w\.safetensors .*no place.*layer1\.0\.se\.scale"):
    convert.load_weights(_write(tmp_path, sd), variables)


def test_wrong_shape_and_non_float_tensors(tiny, tmp_path):
  _, variables, _ = tiny["resnet18_tiny"]
  sd = load_file(FIX / "resnet18_tiny.safetensors")
  sd["conv1.weight"] = np.zeros((8, 3, 3, 3), np.float32)
  with pytest.raises(convert.WeightFileError,
                     match=r"shape mismatch: params model/conv1/kernel: "
                     r"checkpoint \(3, 3, 3, 8\) vs target \(7, 7, 3, 8\)"
                     r".*'conv1\.weight'"):
    convert.load_weights(_write(tmp_path, sd), variables)
  sd = load_file(FIX / "resnet18_tiny.safetensors")
  sd["layer1.0.conv1.weight"] = sd["layer1.0.conv1.weight"].astype(np.int8)
  with pytest.raises(convert.WeightFileError,
                     match=r"w\.safetensors: non-floating-point tensor\(s\) "
                     r"'layer1\.0\.conv1\.weight' \(int8"):
    convert.load_weights(_write(tmp_path, sd), variables)
  # BatchNorm's integer counter is no weight: skipped by name.
  sd = load_file(FIX / "resnet18_tiny.safetensors")
  sd["bn1.num_batches_tracked"] = np.asarray(7, np.int64)
  convert.load_weights(_write(tmp_path, sd), variables, reinit=())


def test_non_float_tensor_in_a_flax_file_is_named(tiny, tmp_path):
  _, variables, _ = tiny["resnet18_tiny"]
  npz = tmp_path / "flax.npz"
  convert.save_variables(npz, convert.load_weights(
      FIX / "resnet18_tiny.safetensors", variables, reinit=()))
  flat = dict(np.load(npz))
  flat["params/conv1/kernel"] = flat["params/conv1/kernel"].astype(np.int32)
  np.savez(npz, **flat)
  with pytest.raises(convert.WeightFileError,
                     match=r"flax\.npz: non-floating-point tensor\(s\) "
                     r"'params/conv1/kernel' \(int32"):
    convert.load_weights(npz, variables)


def test_unreadable_and_unknown_files(tmp_path, tiny):
  _, variables, _ = tiny["resnet18_tiny"]
  with pytest.raises(FileNotFoundError, match="nothere.safetensors"):
    convert.load_weights(tmp_path / "nothere.safetensors", variables)
  bad = tmp_path / "bad.safetensors"
  bad.write_bytes(b"not a safetensors file")
  with pytest.raises(convert.WeightFileError, match="bad.safetensors"):
    convert.load_weights(bad, variables)
  (tmp_path / "w.h5").write_bytes(b"")
  with pytest.raises(convert.WeightFileError, match=r"'\.h5'.*\.safetensors"):
    convert.read_tensors(tmp_path / "w.h5")


def test_default_reinit_keeps_fresh_head_and_bottleneck(tmp_path):
  model = TorchvisionResNet(num_classes=3, depth=18, widths=(4, 8, 8, 16),
                            stem_width=8, bottleneck=6)
  variables = _template(model)
  loaded = convert.load_weights(FIX / "resnet18_tiny.safetensors", variables)
  for coll, mod, leaf in (("params", "head", "kernel"),
                          ("params", "bottleneck", "kernel"),
                          ("params", "bottleneck_bn", "scale"),
                          ("batch_stats", "bottleneck_bn", "mean")):
    assert loaded[coll][mod][leaf] is variables[coll][mod][leaf]
  sd = load_file(FIX / "resnet18_tiny.safetensors")
  np.testing.assert_array_equal(loaded["params"]["conv1"]["kernel"],
                                sd["conv1.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(loaded["batch_stats"]["bn1"]["var"],
                                sd["bn1.running_var"])


# ---------------------------------------------------------------------------
# Models: features, bottleneck head, augmentation.

def test_bottleneck_head_features_and_train_mode():
  model = TorchvisionResNet(num_classes=4, depth=18, widths=(4, 8, 8, 16),
                            stem_width=8, bottleneck=6)
  x = jax.random.uniform(KEY, (3, 16, 16, 3))
  variables = _init(model, 16)
  train_apply = jax.jit(lambda v, x: model.apply(
      v, x, train=True, rngs={"dropout": KEY}, mutable=["batch_stats"]))
  (logits, feats), upd = train_apply(variables, x)
  assert logits.shape == (3, 4) and logits.dtype == jnp.float32
  assert feats["embedding"].shape == (3, 6)
  assert feats["pool"].shape == (3, 16)
  np.testing.assert_array_equal(feats["embedding"], feats["bottleneck"])
  assert float(jnp.min(feats["bottleneck"])) >= 0.0  # after the ReLU
  assert set(upd["batch_stats"]) >= {"bn1", "bottleneck_bn", "layer4_1"}


def test_augmentation_runs_in_training_only(monkeypatch):
  model = TorchvisionResNet(num_classes=4, depth=18, widths=(4, 8, 8, 16),
                            stem_width=8, augment=True, crop_scale=(0.5, 1.0))
  seen = []
  real = preprocess.augment

  def spy(rng, x, **kw):
    seen.append(kw)
    return real(rng, x, **kw)

  monkeypatch.setattr(preprocess, "augment", spy)
  x = jnp.zeros((2, 16, 16, 3))
  variables = _template(model, 16)
  jax.eval_shape(lambda v: model.apply(v, x, rngs={"dropout": KEY}),
                 variables)
  jax.eval_shape(lambda v: model.apply(v, x, train=True,
                                       mutable=["batch_stats"]), variables)
  assert not seen  # evaluation mode, or no PRNG stream
  jax.eval_shape(lambda v: model.apply(v, x, train=True, rngs={"dropout": KEY},
                                       mutable=["batch_stats"]), variables)
  assert seen == [{"scale": (0.5, 1.0)}]


def test_random_resized_crop_identity_box_and_flip():
  x = jax.random.uniform(KEY, (2, 8, 8, 3))
  full = jnp.asarray([[0.0, 0.0, 8.0, 8.0]] * 2)
  np.testing.assert_allclose(preprocess.crop_and_resize(x, full), x,
                             atol=1e-6)
  # The left half of the image, stretched to full width (the last output
  # column interpolates towards the pixel just outside the box, where a crop
  # followed by a resize would repeat the edge).
  half = jnp.asarray([[0.0, 0.0, 8.0, 4.0]] * 2)
  out = preprocess.crop_and_resize(x, half)
  ref = np.asarray(jax.image.resize(x[:, :, :4], (2, 8, 8, 3), "linear"))
  np.testing.assert_allclose(out[:, :, :7], ref[:, :, :7], atol=1e-5)
  boxes = preprocess.crop_boxes(KEY, 1000, 32, 48, scale=(0.2, 0.6))
  area = boxes[:, 2] * boxes[:, 3] / (32 * 48)
  assert float(area.min()) >= 0.2 - 1e-4 and float(area.max()) <= 0.6 + 1e-4
  assert float((boxes[:, 0] + boxes[:, 2]).max()) <= 32 + 1e-4
  assert float((boxes[:, 1] + boxes[:, 3]).max()) <= 48 + 1e-4
  flipped = preprocess.random_flip(KEY, x)
  for i in range(2):
    assert (np.array_equal(flipped[i], x[i])
            or np.array_equal(flipped[i], x[i, :, ::-1]))
  norm = preprocess.normalize_named(jnp.full((1, 2, 2, 3), 0.485), "imagenet")
  np.testing.assert_allclose(norm[..., 0], 0.0, atol=1e-6)
