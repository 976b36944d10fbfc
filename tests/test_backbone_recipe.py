"""The deep domain-adaptation recipe on PACS through the trainer
(experiments/configs/imagefolder/), with and without pretrained weights."""

import importlib
import os
import pathlib

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from tlax import train
from tlax.methods import mcd
from tlax.train import finetune

# Every config of experiments/configs/imagefolder/ (one per method).
_DIR = (pathlib.Path(__file__).resolve().parents[1] / "experiments" /
        "configs" / "imagefolder")
METHODS = sorted(p.stem for p in _DIR.glob("*.py")
                 if p.stem not in ("__init__", "recipe"))


def _config(method, arg="quick"):
  return importlib.import_module(
      f"experiments.configs.imagefolder.{method}").get_config(arg)


@pytest.fixture
def pacs(data_dir):
  if not os.path.isdir(os.path.join(data_dir, "pacs")):
    pytest.skip("PACS not in the data folder")
  return data_dir


def test_recipe_settings():
  c = _config("dann", "lambda=0.5")
  assert c.model.name == "resnet50_tv" and c.model.kwargs.bottleneck == 256
  assert (c.optimizer.name, c.optimizer.lr, c.optimizer.schedule) == (
      "sgd", 0.01, "dann")
  assert c.batch_size == c.target_batch_size == 32
  assert c.method["lambda"] == 0.5
  params = {"model": {"conv1": {"kernel": 0.0}, "layer4_2": {"bn3": {
      "scale": 0.0}}, "bottleneck": {"kernel": 0.0},
                      "bottleneck_bn": {"scale": 0.0}, "head": {"bias": 0.0}},
            "discriminator": {"Dense_0": {"kernel": 0.0}}}
  mults = finetune.flatten(finetune.lr_multipliers(params,
                                                   c.finetune.lr_mults))
  assert mults == {"model/conv1/kernel": 0.1,
                   "model/layer4_2/bn3/scale": 0.1,
                   "model/bottleneck/kernel": 1.0,
                   "model/bottleneck_bn/scale": 1.0,
                   "model/head/bias": 1.0,
                   "discriminator/Dense_0/kernel": 1.0}


def test_mcd_and_mdd_recipes_keep_the_method_defaults_and_lr_rules():
  c = _config("mdd", "margin=2")
  assert c.method.name == "mdd" and c.method.margin == 2.0
  assert c.method["lambda"] == pytest.approx(0.1)
  assert (c.optimizer.name, c.batch_size, c.model.kwargs.bottleneck) == (
      "sgd", 32, 256)
  c = _config("mcd")
  assert (c.method.name, c.method.n_gen, c.optimizer.name,
          c.optimizer.schedule) == ("mcd", 4, "sgd", "dann")
  # MCD's two optimisers see the full paths, so the backbone stays at 0.1x.
  params = {"model": {"conv1": {"kernel": 0.0},
                      "bottleneck": {"kernel": 0.0}, "head": {"bias": 0.0}},
            "classifier2": {"head": {"bias": 0.0}}}
  gen, cls = mcd._split(params)  # pylint: disable=protected-access
  rules = c.finetune.lr_mults
  assert finetune.flatten(finetune.lr_multipliers(gen, rules)) == {
      "model/conv1/kernel": 0.1, "model/bottleneck/kernel": 1.0}
  assert finetune.flatten(finetune.lr_multipliers(cls, rules)) == {
      "model/head/bias": 1.0, "classifier2/head/bias": 1.0}
  assert mcd._join(gen, cls) == params  # pylint: disable=protected-access


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_recipe_runs_on_pacs(method, pacs, tmp_path):
  config = _config(method)
  config.data_dir = pacs
  result = train.train_and_evaluate(config, tmp_path / "run")
  assert result["steps"] == 2 and result["num_target_test"] == 14
  assert 0.0 <= result["target_accuracy"] <= 100.0


def _torch_module(mod):
  """torchvision's module name of a resnet_tv module path."""
  mod = (mod.replace("downsample_conv", "downsample.0")
         .replace("downsample_bn", "downsample.1").replace("head", "fc"))
  if mod.startswith("layer"):
    mod = mod.replace("/", ".").replace("_", ".", 1)
  return mod


@pytest.mark.slow
def test_pretrained_weights_load_in_the_trainer(pacs, tmp_path):
  config = _config("source_only")
  config.data_dir = pacs
  config.steps = 1
  config.log_every = config.eval_every = config.checkpoint_every = 1
  config.optimizer.lr = 0.0  # the step changes nothing: compare the weights
  config.model.kwargs.bottleneck = None
  # A "pretrained" file in the torchvision layout for this test-sized net.
  from tlax import models  # pylint: disable=g-import-not-at-top
  model = models.get_model("resnet18_tv", 1000,
                           **dict(config.model.kwargs.to_dict()))
  rng = np.random.default_rng(0)
  shapes = jax.eval_shape(lambda x: model.init(jax.random.key(0), x),
                          jax.numpy.zeros((1, 32, 32, 3)))
  sd = {}
  for path, s in finetune.flatten(shapes["params"]).items():
    mod, leaf = path.rsplit("/", 1)
    tmod = _torch_module(mod)
    w = rng.normal(size=s.shape).astype(np.float32)
    if leaf == "kernel":
      # (safetensors writes an array's buffer as is: make it C-contiguous)
      w = np.ascontiguousarray(w.transpose(3, 2, 0, 1) if w.ndim == 4
                               else w.T)
    sd[f"{tmod}.{ {'kernel': 'weight', 'scale': 'weight'}.get(leaf, leaf)}"] = w
  for path, s in finetune.flatten(shapes["batch_stats"]).items():
    mod, leaf = path.rsplit("/", 1)
    tmod = _torch_module(mod)
    sd[f"{tmod}.running_{leaf}"] = rng.uniform(
        0.5, 1.5, size=s.shape).astype(np.float32)
  save_file(sd, tmp_path / "r18.safetensors")
  config.model.pretrained = str(tmp_path / "r18.safetensors")
  train.train_and_evaluate(config, tmp_path / "run")
  trees = finetune.load_checkpoint_trees(tmp_path / "run")
  np.testing.assert_allclose(
      trees["params"]["model"]["layer2_0"]["downsample_conv"]["kernel"],
      sd["layer2.0.downsample.0.weight"].transpose(2, 3, 1, 0), rtol=1e-6)


def test_domainbed_erm_settings():
  c = importlib.import_module(
      "experiments.configs.dg.pacs_resnet50").get_config("erm")
  assert (c.model.name, c.image_size, c.steps, c.eval_every) == (
      "resnet50_tv", 224, 5000, 300)
  assert (c.optimizer.name, c.optimizer.lr, c.optimizer.weight_decay,
          c.optimizer.schedule) == ("adam", 5e-5, 0.0, "constant")
  assert c.batch_size == 3 * 32 and c.source_val_fraction == 0.2
  assert c.source.count("+") == 2 and c.target == "pacs/sketch"
  assert tuple(c.model.kwargs.crop_scale) == (0.7, 1.0)


@pytest.mark.slow
def test_domainbed_erm_config_runs_on_pacs(pacs, tmp_path):
  config = importlib.import_module(
      "experiments.configs.dg.pacs_resnet50").get_config("erm,quick")
  config.data_dir = pacs
  result = train.run_experiment(config, str(tmp_path / "run"))
  assert result["method"] == "erm" and result["steps"] == 2
  assert len(result["training_domains"]) == 3
  assert 0.0 <= result["test_domain_accuracy"] <= 100.0
