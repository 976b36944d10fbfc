"""Tests for tlax.models (the model contract, the registry, the layers) and
the opt-in convolution forms of tlax.kernels.conv."""

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from tlax import models
from tlax.kernels import conv as layers
from tlax.train import xla

# RBG keys: XLA compiles their random bits several times faster than
# threefry's, which dominated the cost of compiling model.init in tests.
KEY = jax.random.key(0, impl="rbg")
KEY1 = jax.random.key(1, impl="rbg")

# (input shape without batch, expected LeNet "flat" size)
IMAGE_SHAPES = {
    "16x16x1": ((16, 16, 1), 4 * 4 * 48),
    "28x28x1": ((28, 28, 1), 7 * 7 * 48),
    "32x32x3": ((32, 32, 3), 8 * 8 * 48),
}


def _x64():
  """Context enabling float64 locally (never globally)."""
  if hasattr(jax, "enable_x64"):
    return jax.enable_x64(True)
  from jax.experimental import enable_x64  # pylint: disable=g-import-not-at-top
  return enable_x64()


def _shapes(model, x, train=False):
  """Variables and outputs as ShapeDtypeStructs (no compilation)."""
  variables = jax.eval_shape(
      lambda x: model.init({"params": KEY, "dropout": KEY}, x, train=False), x)
  if train:
    out = jax.eval_shape(
        lambda v, x: model.apply(v, x, train=True, rngs={"dropout": KEY},
                                 mutable=["batch_stats"])[0], variables, x)
  else:
    out = jax.eval_shape(lambda v, x: model.apply(v, x, train=False),
                         variables, x)
  return variables, out


# --------------------------------------------------------------------------
# Shapes, feature names, head name.

@pytest.mark.parametrize("shape", list(IMAGE_SHAPES))
def test_lenet_shapes_and_features(shape):
  in_shape, flat = IMAGE_SHAPES[shape]
  x = jnp.zeros((3, *in_shape))
  model = models.get_model("lenet", 10)
  variables, (logits, feats) = _shapes(model, x)
  h, w, _ = in_shape
  assert logits.shape == (3, 10) and logits.dtype == jnp.float32
  assert set(feats) == {"conv1", "conv2", "flat", "fc1", "fc2", "embedding"}
  assert feats["conv1"].shape == (3, h // 2, w // 2, 32)
  assert feats["conv2"].shape == (3, h // 4, w // 4, 48)
  assert feats["flat"].shape == (3, flat)
  assert feats["fc2"].shape == feats["embedding"].shape == (3, 100)
  assert set(variables["params"]) == {"conv1", "conv2", "fc1", "fc2", "head"}
  assert variables["params"]["head"]["kernel"].shape == (100, 10)
  assert variables["params"]["conv1"]["kernel"].shape == (5, 5, in_shape[2], 32)


def test_lenet_input_forms_and_options():
  model = models.LeNet(10)
  _, (l3, _) = _shapes(model, jnp.zeros((2, 16, 16)))  # no channel axis
  assert l3.shape == (2, 10)
  flat_model = models.LeNet(10, input_shape=(16, 16), bottleneck=64)
  _, (lf, feats) = _shapes(flat_model, jnp.zeros((2, 256)))
  assert lf.shape == (2, 10)
  assert feats["embedding"].shape == feats["bottleneck"].shape == (2, 64)
  valid = models.LeNet(10, padding="VALID")
  _, (_, feats) = _shapes(valid, jnp.zeros((2, 28, 28, 1)))
  assert feats["flat"].shape == (2, 768)  # the paper's 4x4x48 feature
  with pytest.raises(ValueError, match="input_shape"):
    _shapes(model, jnp.zeros((2, 256)))


@pytest.mark.parametrize("shape", list(IMAGE_SHAPES) + ["800"])
def test_mlp_shapes_and_features(shape):
  in_shape = IMAGE_SHAPES[shape][0] if shape in IMAGE_SHAPES else (800,)
  model = models.get_model("mlp", 7, hidden=(64, 32), bottleneck=16)
  variables, (logits, feats) = _shapes(model, jnp.zeros((5, *in_shape)))
  assert logits.shape == (5, 7)
  assert set(feats) == {"fc1", "fc2", "bottleneck", "embedding"}
  assert feats["fc1"].shape == (5, 64) and feats["embedding"].shape == (5, 16)
  assert variables["params"]["fc1"]["kernel"].shape == (int(np.prod(in_shape)),
                                                        64)
  assert "head" in variables["params"]


def test_mlp_linear_and_bad_activation():
  _, (logits, feats) = _shapes(models.MLP(3, hidden=()), jnp.zeros((2, 800)))
  assert logits.shape == (2, 3) and list(feats) == ["embedding"]
  assert feats["embedding"].shape == (2, 800)
  with pytest.raises(ValueError, match="relu"):
    _shapes(models.MLP(3, activation="nope"), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match=r"widths must be positive integers; "
                     r"got hidden=\(-4,\)"):
    _shapes(models.MLP(3, hidden=(-4,)), jnp.zeros((2, 4)))


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
@pytest.mark.parametrize("shape", list(IMAGE_SHAPES))
def test_resnet_shapes_and_features(name, shape):
  in_shape, _ = IMAGE_SHAPES[shape]
  h = in_shape[0]
  model = models.get_model(name, 10)
  variables, (logits, feats) = _shapes(model, jnp.zeros((2, *in_shape)))
  assert logits.shape == (2, 10)
  assert set(feats) == {"stem", "stage1", "stage2", "stage3", "pool",
                        "embedding"}
  assert feats["stage1"].shape == (2, h, h, 16)
  assert feats["stage2"].shape == (2, h // 2, h // 2, 32)
  assert feats["stage3"].shape == (2, -(-h // 4), -(-h // 4), 64)
  assert feats["embedding"].shape == (2, 64)
  assert "head" in variables["params"] and "batch_stats" in variables
  n_blocks = sum(k.startswith("stage") for k in variables["params"])
  assert n_blocks == {"resnet8": 3, "resnet20": 9}[name]


def test_resnet_bad_depth():
  with pytest.raises(ValueError, match="6n\\+2"):
    _shapes(models.ResNet(10, depth=10), jnp.zeros((1, 8, 8, 1)))


# Small widths for the tests that compile and run a model.
SMALL = {
    "mlp": {"hidden": (16,)},
    "lenet": {"conv_features": (4, 8), "hidden": (16, 16)},
    "resnet8": {"widths": (4, 8, 8)},
}


@pytest.mark.parametrize("name,kwargs,x_shape", [
    ("mlp", {"dropout": 0.5, "bottleneck": 8}, (4, 800)),
    ("lenet", {"dropout": 0.5}, (4, 16, 16, 1)),
])
def test_embedding_is_head_input(name, kwargs, x_shape):
  """features["embedding"] is exactly what the head sees, in both modes."""
  model = models.get_model(name, 5, **SMALL[name], **kwargs)
  x = jax.random.normal(KEY, x_shape)
  variables = jax.jit(lambda x: model.init(KEY, x, train=False))(x)
  head = variables["params"]["head"]

  @jax.jit
  def run(variables, x):
    outs = []
    for train in (False, True):
      (logits, feats), _ = model.apply(variables, x, train=train,
                                       rngs={"dropout": KEY1},
                                       mutable=["batch_stats"])
      outs.append((logits, feats["embedding"]))
    return outs

  (l_eval, e_eval), (l_train, e_train) = run(variables, x)
  for logits, emb in ((l_eval, e_eval), (l_train, e_train)):
    np.testing.assert_allclose(logits, emb @ head["kernel"] + head["bias"],
                               rtol=1e-5, atol=1e-5)
  # Dropout is on only in training.
  assert np.any(np.asarray(e_eval) != np.asarray(e_train))


def test_all_models_accept_train_keyword():
  x = jnp.zeros((2, 16, 16, 1))
  for name in models.MODELS:
    model = models.get_model(name, 3)
    variables = jax.eval_shape(lambda x: model.init(KEY, x, train=True), x)
    assert "head" in variables["params"], name


# --------------------------------------------------------------------------
# BatchNorm state, dtypes, jit.

def test_resnet_batchnorm_updates_only_in_train_mode():
  """Train mode: batch statistics, updated ``batch_stats``; eval: neither."""
  model = models.get_model("resnet8", 4, bottleneck=8, **SMALL["resnet8"])
  x = 3.0 + jax.random.normal(KEY, (8, 8, 8, 1))
  variables = jax.jit(lambda x: model.init(KEY, x, train=False))(x)
  stats, head = variables["batch_stats"], variables["params"]["head"]

  @jax.jit
  def run(variables, x):
    return [model.apply(variables, x, train=train, mutable=["batch_stats"])
            for train in (True, False)]

  ((l_train, f_train), upd_train), ((l_eval, f_eval), upd_eval) = run(
      variables, x)
  changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), stats,
                         upd_train["batch_stats"])
  assert all(jax.tree.leaves(changed))
  jax.tree.map(np.testing.assert_array_equal, stats, upd_eval["batch_stats"])
  # Fresh running averages (mean 0, var 1) differ from the batch statistics
  # of inputs centred at 3, so the two modes give different features.
  assert np.abs(np.asarray(f_train["stem"] - f_eval["stem"])).max() > 0.1
  for logits, feats in ((l_train, f_train), (l_eval, f_eval)):
    np.testing.assert_allclose(
        logits, feats["embedding"] @ head["kernel"] + head["bias"],
        rtol=1e-5, atol=1e-5)


def test_bfloat16_computation_float32_params():
  model = models.get_model("lenet", 10, dtype=jnp.bfloat16)
  x = jnp.ones((2, 16, 16, 1))
  variables, (logits, feats) = _shapes(model, x)
  assert all(p.dtype == jnp.float32
             for p in jax.tree.leaves(variables["params"]))
  assert feats["embedding"].dtype == jnp.bfloat16
  assert logits.dtype == jnp.float32
  rmodel = models.get_model("resnet8", 10, dtype=jnp.bfloat16)
  variables, (logits, feats) = _shapes(rmodel, x, train=True)
  assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(variables))
  assert feats["stage3"].dtype == jnp.bfloat16 and logits.dtype == jnp.float32


def test_jitted_train_step_does_not_retrace():
  model = models.get_model("lenet", 10, **SMALL["lenet"])
  x = jax.random.normal(KEY, (4, 16, 16, 1))
  y = jnp.arange(4) % 10
  params = jax.jit(lambda x: model.init(KEY, x, train=False))(x)["params"]
  traces = []

  @jax.jit
  def step(params, x, y):
    traces.append(1)

    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x, train=True)
      return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(4), y])

    loss, grads = jax.value_and_grad(loss_fn)(params)
    return jax.tree.map(lambda p, g: p - 0.1 * g, params, grads), loss

  losses = []
  for i in range(3):
    params, loss = step(params, x + i, y)
    losses.append(float(loss))
  assert len(traces) == 1
  assert np.all(np.isfinite(losses))


# --------------------------------------------------------------------------
# Registry.

def test_get_model_registry_and_errors():
  assert {"mlp", "lenet", "resnet8", "resnet20"} <= set(models.MODELS)
  model = models.get_model("resnet14", 3, widths=(8, 16, 32))
  assert isinstance(model, models.ResNet) and model.depth == 14
  assert model.num_classes == 3 and tuple(model.widths) == (8, 16, 32)
  with pytest.raises(KeyError) as err:
    models.get_model("vgg16", 10)
  for name in ("lenet", "mlp", "resnet20"):
    assert name in str(err.value)


# --------------------------------------------------------------------------
# layers.Conv: same values and gradients as nn.Conv.

CONV_CASES = [  # (spatial, cin, cout, kernel, strides, padding, weight_grad)
    ((16, 16), 1, 8, 5, 1, "SAME", "im2col"),
    ((9, 7), 3, 4, 5, 1, "VALID", "xla"),
    ((8, 8), 4, 6, 3, 1, "SAME", "im2col"),
    ((7, 6), 2, 3, 3, 1, "VALID", "im2col"),
    ((9, 8), 3, 4, 3, 2, "SAME", "xla"),
    ((8, 8), 4, 5, 1, 2, "SAME", "im2col"),
    ((7, 7), 2, 3, 3, 1, ((2, 0), (1, 3)), "im2col"),
]


def _loss(model):
  return lambda v, x: jnp.sum(jnp.sin(model.apply(v, x)) ** 2)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_matches_flax_conv(case):
  spatial, cin, cout, k, s, pad, weight_grad = case
  x = jax.random.normal(KEY, (2, *spatial, cin))
  ref = nn.Conv(cout, (k, k), strides=s, padding=pad)
  ours = {"ours": layers.Conv(cout, k, strides=s, padding=pad, impl="im2col",
                              weight_grad=weight_grad),
          "patches": layers.Conv(cout, k, strides=s, padding=pad,
                                 impl="patches")}
  variables = ref.init(KEY1, x)
  mine = ours["ours"].init(KEY1, x)
  assert jax.tree.map(jnp.shape, mine) == jax.tree.map(jnp.shape, variables)

  @jax.jit
  def run(variables, x):
    out = {}
    for name, m in (("ref", ref), *ours.items()):
      out[name] = (m.apply(variables, x),
                   jax.grad(_loss(m), argnums=(0, 1))(variables, x))
    return out

  out = run(variables, x)
  for wg in ours:
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                         atol=1e-4),
                 out[wg], out["ref"])


@pytest.mark.parametrize("case", [CONV_CASES[1], CONV_CASES[4],
                                  CONV_CASES[6]], ids=str)
def test_conv_check_grads_float64(case):
  spatial, cin, cout, k, s, pad, weight_grad = case
  with _x64():
    x = jax.random.normal(KEY, (1, *spatial, cin), jnp.float64)
    w = jax.random.normal(KEY1, (k, k, cin, cout), jnp.float64)
    f = jax.jit(lambda x, w: layers.conv2d(x, w, (s, s), pad, impl="im2col",
                                           weight_grad=weight_grad))
    assert f(x, w).dtype == jnp.float64
    check_grads(f, (x, w), order=1, modes=("rev",), eps=1e-4)
    ref = jax.jit(lambda x, w: layers.conv2d(x, w, (s, s), pad, impl="xla"))
    np.testing.assert_allclose(f(x, w), ref(x, w), rtol=1e-12, atol=1e-12)
    # "patches" is differentiable in both modes (no custom VJP).
    p = jax.jit(lambda x, w: layers.conv2d(x, w, (s, s), pad,
                                           impl="patches"))
    check_grads(p, (x, w), order=2, modes=("fwd", "rev"), eps=1e-4)
    np.testing.assert_allclose(p(x, w), ref(x, w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("m,r", [(4, 5), (4, 3), (2, 5), (4, 1), (3, 2)])
def test_winograd_matrices_compute_correlation(m, r):
  at, g, bt = layers.winograd_matrices(m, r)
  assert at.shape == (m, m + r - 1) and g.shape == (m + r - 1, r)
  rng = np.random.RandomState(m * 10 + r)
  d, k = rng.randn(m + r - 1), rng.randn(r)
  want = np.array([sum(k[j] * d[i + j] for j in range(r)) for i in range(m)])
  np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), want, atol=1e-12)
  with pytest.raises(ValueError, match="Winograd"):
    layers.winograd_matrices(4, 6)


WINOGRAD_CASES = [  # (spatial, cin, cout, kernel, padding)
    ((16, 16), 1, 8, (5, 5), "SAME"),
    ((9, 7), 3, 4, (5, 5), "VALID"),
    ((8, 8), 4, 6, (3, 3), "SAME"),
    ((7, 6), 2, 3, (3, 2), "VALID"),
    ((7, 7), 2, 3, (3, 3), ((2, 0), (1, 3))),
    ((5, 5), 2, 3, (5, 5), "SAME"),  # one output tile, cut to 5x5
    ((12, 12), 20, 50, (5, 5), "VALID"),  # TLL LeNet's conv2
]


@pytest.mark.parametrize("case", WINOGRAD_CASES, ids=str)
def test_conv_winograd_matches_xla(case):
  spatial, cin, cout, k, pad = case
  x = jax.random.normal(KEY, (2, *spatial, cin))
  w = jax.random.normal(KEY1, (*k, cin, cout)) / np.sqrt(k[0] * k[1] * cin)

  @jax.jit
  def run(x, w):
    out = {}
    for impl in ("winograd", "xla"):
      f = lambda x, w, impl=impl: layers.conv2d(x, w, (1, 1), pad, impl=impl)
      out[impl] = (f(x, w), jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w))),
                                     argnums=(0, 1))(x, w))
    return out

  out = run(x, w)
  assert out["winograd"][0].shape == out["xla"][0].shape
  # Float32 rounding grows with the transforms (entries up to 2^4 for 5x5);
  # an off-by-one tile or a wrong matrix would be off by O(1).
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=0, atol=2e-4 * float(jnp.abs(b).max())),
               out["winograd"], out["xla"])


@pytest.mark.parametrize("case", WINOGRAD_CASES[:5], ids=str)
def test_conv_winograd_tile_paths_agree(case, monkeypatch):
  # Small maps cut each tile on its own, larger ones slice rows and columns
  # of tiles (WINOGRAD_PER_TILE_MAX): the same tiles, the same values.
  spatial, cin, cout, k, pad = case
  x = jax.random.normal(KEY, (2, *spatial, cin))
  w = jax.random.normal(KEY1, (*k, cin, cout))

  def run():
    f = lambda x, w: layers.conv2d(x, w, (1, 1), pad, impl="winograd")
    return jax.jit(lambda x, w: (f(x, w), jax.grad(
        lambda x, w: jnp.sum(jnp.sin(f(x, w))), argnums=(0, 1))(x, w)))(x, w)

  per_tile = run()
  monkeypatch.setattr(layers, "WINOGRAD_PER_TILE_MAX", 0)
  sliced = run()
  np.testing.assert_array_equal(per_tile[0], sliced[0])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=1e-6, atol=1e-6 * float(jnp.abs(b).max())),
               per_tile[1], sliced[1])


def test_conv_winograd_float64_grads_and_errors():
  with _x64():
    x = jax.random.normal(KEY, (1, 7, 6, 3), jnp.float64)
    w = jax.random.normal(KEY1, (5, 3, 3, 2), jnp.float64)
    f = jax.jit(lambda x, w: layers.conv2d(x, w, (1, 1), "SAME",
                                           impl="winograd"))
    ref = layers.conv2d(x, w, (1, 1), "SAME", impl="xla")
    np.testing.assert_allclose(f(x, w), ref, rtol=1e-11, atol=1e-11)
    check_grads(f, (x, w), order=2, modes=("fwd", "rev"), eps=1e-4)
  x = jnp.zeros((1, 8, 8, 8))
  with pytest.raises(ValueError, match="strides"):
    layers.conv2d(x, jnp.zeros((3, 3, 8, 4)), (2, 2), "SAME",
                  impl="winograd")
  with pytest.raises(ValueError, match="kernels up to"):
    layers.conv2d(x, jnp.zeros((7, 7, 8, 4)), (1, 1), "SAME",
                  impl="winograd")
  with pytest.raises(ValueError, match="no output"):
    layers.conv2d(jnp.zeros((1, 3, 3, 8)), jnp.zeros((5, 5, 8, 4)), (1, 1),
                  "VALID", impl="winograd")


def test_conv_impls_vmap_and_errors():
  x = jax.random.normal(KEY, (2, 6, 6, 3))
  ws = jax.random.normal(KEY, (4, 3, 3, 3, 5))  # a stack of 4 kernels

  def loss(w, impl):
    return jnp.sum(layers.conv2d(x, w, (1, 1), "SAME", impl=impl) ** 2)

  g_im2col = jax.vmap(jax.grad(lambda w: loss(w, "im2col")))(ws)
  g_xla = jax.vmap(jax.grad(lambda w: loss(w, "xla")))(ws)
  np.testing.assert_allclose(g_im2col, g_xla, rtol=1e-4, atol=1e-4)
  g_patches = jax.vmap(jax.grad(lambda w: loss(w, "patches")))(ws)
  np.testing.assert_allclose(g_patches, g_xla, rtol=1e-4, atol=1e-4)
  g_winograd = jax.vmap(jax.grad(lambda w: loss(w, "winograd")))(ws)
  np.testing.assert_allclose(g_winograd, g_xla, rtol=0,
                             atol=2e-5 * float(jnp.abs(g_xla).max()))
  assert layers.resolve_impl("xla") == "xla"
  assert layers.resolve_impl("patches") == "patches"
  limit = layers.PATCHES_MAX_ELEMENTS
  if jax.default_backend() == "cpu":
    # On the CPU, "auto" takes the patch matrix only while it is small.
    assert layers.resolve_impl("auto", limit) == layers.CPU_IMPL
    if layers.CPU_IMPL == "patches":
      assert layers.resolve_impl("auto", limit + 1) == "xla"
    assert layers.resolve_impl("auto", limit + 1, winograd_ok=True) == (
        "winograd")
    assert layers.resolve_impl("auto", limit, in_channels=7) == "patches"
    assert layers.resolve_impl("auto", limit, in_channels=8) == "xla"
  else:  # GPU / TPU: XLA's own convolution (cuDNN) always
    assert layers.resolve_impl("auto", limit) == "xla"
    assert layers.resolve_impl("auto", limit, winograd_ok=True) == "xla"
  with pytest.raises(ValueError, match="impl"):
    layers.resolve_impl("cudnn")


@pytest.fixture(name="picked")
def _picked_impls(monkeypatch):
  """The implementations ``layers.conv2d`` resolves to, in call order."""
  picked = []
  resolve = layers.resolve_impl
  monkeypatch.setattr(layers, "resolve_impl",
                      lambda *a: picked.append(resolve(*a)) or picked[-1])
  return picked


@pytest.mark.parametrize("native_kernels", ["1", "0"])
def test_conv_auto_picks_winograd_only_where_measured_faster(
    picked, monkeypatch, native_kernels):
  from tlax.kernels import native  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("TLAX_NATIVE", native_kernels)
  # 16 tiles (14x14 maps) take Winograd only with the native batched matmul.
  big = "winograd" if native.available() else "xla"
  cases = [  # (input NHWC, kernel HWIO, strides, what the CPU picks)
      ((64, 8, 8, 32), (5, 5, 32, 48), 1, "winograd"),  # LeNet conv2
      ((64, 16, 16, 1), (5, 5, 1, 32), 1, "patches"),  # one channel
      ((64, 32, 32, 16), (3, 3, 16, 16), 1, "xla"),  # large maps
      ((64, 14, 14, 32), (5, 5, 32, 48), 1, big),  # 28x28 LeNet conv2
      ((64, 20, 20, 32), (5, 5, 32, 48), 1, "xla"),  # 25 tiles
      ((64, 8, 8, 32), (3, 3, 32, 32), 1, "xla"),  # 3x3: XLA through Eigen
      ((4, 8, 8, 32), (3, 3, 32, 32), 2, "xla"),  # strided, many channels
      ((4, 8, 8, 3), (3, 3, 3, 32), 2, "patches"),  # strided, few channels
      ((4, 8, 8, 32), (7, 7, 32, 8), 1, "xla"),  # kernel above 5
      ((4, 8, 8, 3), (7, 7, 3, 8), 1, "patches"),
  ]
  for x_shape, w_shape, s, want in cases:
    picked.clear()
    jax.eval_shape(lambda x, w, s=s: layers.conv2d(x, w, (s, s), "SAME"),
                   jax.ShapeDtypeStruct(x_shape, jnp.float32),
                   jax.ShapeDtypeStruct(w_shape, jnp.float32))
    assert picked == [want if jax.default_backend() == "cpu" else "xla"]
  picked.clear()  # float16 / bfloat16 never take Winograd
  jax.eval_shape(lambda x, w: layers.conv2d(x, w, (1, 1), "SAME"),
                 jax.ShapeDtypeStruct((64, 8, 8, 32), jnp.bfloat16),
                 jax.ShapeDtypeStruct((5, 5, 32, 48), jnp.bfloat16))
  assert picked[0] != "winograd"
  with pytest.raises(ValueError, match="NHWC"):
    layers.Conv(4).init(KEY, jnp.zeros((6, 6, 3)))


def test_cpu_compiler_options_move_xla_convolutions_off_ynnpack(monkeypatch):
  opts = xla.compiler_options()
  if jax.default_backend() != "cpu" or not opts:
    pytest.skip("CPU backend with XLA's YNNPACK fusion option only")
  assert xla.compiler_options("gpu") == {}
  conv = lambda x, w: layers.conv2d(x, w, (1, 1), "SAME", impl="xla")
  args = (jnp.ones((8, 14, 14, 32)), jnp.ones((5, 5, 32, 48)))

  def conv_in_ynn_fusion(**options):
    text = jax.jit(conv, **options).lower(*args).compile().as_text()
    return "ynn_fusion" in text[text.index("\nENTRY"):]

  assert not conv_in_ynn_fusion(compiler_options=opts)
  # The train step compiles with them.
  from tlax.train import step as step_lib  # pylint: disable=g-import-not-at-top
  seen = {}
  real_jit = jax.jit
  monkeypatch.setattr(step_lib.jax, "jit", lambda f, **kw: seen.update(kw)
                      or real_jit(f, **kw))
  step_lib.make_train_step(None, None, None)
  assert seen["compiler_options"] == opts
  # A user's XLA_FLAGS choice of YNNPACK fusions wins.
  monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
  assert xla.compiler_options() == {}


def test_max_pool_matches_flax():
  x = jax.random.normal(KEY, (2, 7, 9, 3))
  for window in (2, 3):
    np.testing.assert_array_equal(
        layers.max_pool(x, window),
        nn.max_pool(x, (window, window), strides=(window, window)))
  np.testing.assert_array_equal(layers.max_pool(x, 3, 1),
                                nn.max_pool(x, (3, 3), strides=(1, 1)))
  g = jax.grad(lambda x: jnp.sum(layers.max_pool(x, 2) ** 2))(x)
  g_ref = jax.grad(
      lambda x: jnp.sum(nn.max_pool(x, (2, 2), strides=(2, 2)) ** 2))(x)
  np.testing.assert_allclose(g, g_ref, rtol=1e-6)



@pytest.mark.parametrize("window", [2, (2, 3), 3])
def test_max_pool_gradient_goes_to_first_maximum_like_flax(window):
  """Ties (constant regions, as a zero image background gives after a conv)
  send the whole gradient to each window's first maximum, as nn.max_pool's
  select_and_scatter does: values, gradients and JVPs equal flax's."""
  x = jax.random.normal(KEY, (3, 8, 9, 4))
  x = x.at[0].set(1.0).at[1, :4, :4].set(0.0)
  x = x.at[2, 0, 1].set(x[2, 0, 0])  # one tie between non-first entries
  wv = layers._pair(window, "window")
  ours = lambda x: jnp.sum(jnp.sin(layers.max_pool(x, window)) * 1.3)
  ref = lambda x: jnp.sum(jnp.sin(nn.max_pool(x, wv, strides=wv)) * 1.3)
  np.testing.assert_array_equal(layers.max_pool(x, window),
                                nn.max_pool(x, wv, strides=wv))
  g = jax.grad(ours)(x)
  np.testing.assert_array_equal(g, jax.grad(ref)(x))
  # a tied window passes the gradient of its output once, not once per max
  np.testing.assert_allclose(jnp.sum(g[0]), jnp.sum(jax.grad(
      lambda y: jnp.sum(jnp.sin(y) * 1.3))(layers.max_pool(x, window))[0]),
                             rtol=1e-5)
  t = jax.random.normal(jax.random.PRNGKey(3), x.shape)
  np.testing.assert_array_equal(jax.jvp(ours, (x,), (t,))[1],
                                jax.jvp(ref, (x,), (t,))[1])


def test_max_pool_check_grads_float64():
  with _x64():
    x = jax.random.normal(KEY, (2, 6, 6, 3), dtype=jnp.float64)
    check_grads(lambda x: layers.max_pool(x, 2), (x,), order=2,
                modes=("fwd", "rev"))

def test_lenet_equals_flax_reference():
  """LeNet = the same net built from nn.Conv and nn.max_pool."""

  class Ref(nn.Module):
    @nn.compact
    def __call__(self, x):
      for i, c in enumerate((4, 8)):
        x = nn.Conv(c, (5, 5), name=f"conv{i + 1}")(x)
        x = nn.max_pool(nn.relu(x), (2, 2), strides=(2, 2))
      x = x.reshape(x.shape[0], -1)
      x = nn.relu(nn.Dense(16, name="fc1")(x))
      x = nn.relu(nn.Dense(16, name="fc2")(x))
      return nn.Dense(10, name="head")(x)

  x = jax.random.normal(KEY, (4, 16, 16, 1))
  model = models.LeNet(10, **SMALL["lenet"])
  variables = jax.jit(lambda x: model.init(KEY, x, train=False))(x)

  @jax.jit
  def run(variables, x):
    ours = lambda v: jnp.sum(model.apply(v, x)[0] ** 2)
    ref = lambda v: jnp.sum(Ref().apply(v, x) ** 2)
    return ((model.apply(variables, x)[0], jax.grad(ours)(variables)),
            (Ref().apply(variables, x), jax.grad(ref)(variables)))

  ours, ref = run(variables, x)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4,
                                                       atol=1e-4), ours, ref)


def test_lenet_auto_conv_matches_xla_conv(picked):
  """The digit LeNet with the opt-in kernels (impl "auto": Winograd for
  conv2 on the CPU) against the same weights with XLA's convolution."""
  x = jax.random.normal(KEY, (8, 16, 16, 1))
  auto, xla = models.LeNet(10, conv_impl="auto"), models.LeNet(10)
  variables = jax.jit(lambda x: auto.init(KEY, x))(x)

  @jax.jit
  def run(variables):
    out = {}
    for name, m in (("auto", auto), ("xla", xla)):
      loss = lambda v, m=m: jnp.sum(jnp.tanh(m.apply(v, x)[0]))
      out[name] = (m.apply(variables, x)[0], jax.grad(loss)(variables))
    return out

  out = run(variables)
  if jax.default_backend() == "cpu":
    assert "winograd" in picked
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=0, atol=1e-4 * max(1.0, float(jnp.abs(b).max()))),
               out["auto"], out["xla"])


@pytest.mark.slow
def test_default_models_are_plain_xla_and_vmap_into_one_program():
  """Default LeNet / ResNet: nn.Conv and jnp pooling, no custom calls, so
  vmapping over runs is one batched program (not a loop over kernels)."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  code = (
      "import sys, jax, jax.numpy as jnp\n"
      "from tlax.models import get_model\n"
      "x = jnp.zeros((2, 16, 16, 1))\n"
      "for name, kw in [('lenet', {}), ('resnet8', {'widths': (2, 4, 4)})]:\n"
      "  m = get_model(name, 10, **kw)\n"
      "  v = jax.vmap(lambda k: m.init(k, x))(jax.random.split(\n"
      "      jax.random.key(0), 3))\n"
      "  jaxpr = str(jax.make_jaxpr(jax.vmap(lambda v: m.apply(v, x)[0]))(v))\n"
      "  assert 'ffi' not in jaxpr and 'custom_call' not in jaxpr, name\n"
      "  assert 'conv_general_dilated' in jaxpr\n"
      "assert not [k for k in sys.modules if k.startswith('tlax.kernels')]\n")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("impl", ["patches", "winograd"])
def test_lenet_opt_in_conv_forms_share_parameters_and_values(impl):
  x = jax.random.normal(KEY, (4, 16, 16, 1))
  plain = models.get_model("lenet", 10)
  other = models.get_model("lenet", 10, conv_impl=impl)
  v = plain.init(KEY, x)
  v2 = other.init(KEY, x)
  assert jax.tree.map(jnp.shape, v) == jax.tree.map(jnp.shape, v2)
  for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(v2)):
    np.testing.assert_array_equal(a, b)
  np.testing.assert_allclose(other.apply(v, x)[0], plain.apply(v, x)[0],
                             rtol=1e-4, atol=1e-5)
