"""Fine-tuning end to end: pretrain (1 device) -> strict load -> fine-tune.

A quick pretraining run (``experiments/configs/pretrain.py:quick``, pmap over
the one CPU device of the test process) gives a checkpoint; each fine-tuning
preset then trains through the generic trainer and the tests check what the
rules promise: frozen layers keep the checkpoint's values, re-initialised
ones do not, LoRA trains only its factors and the head.
"""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import finetune as ft_config
from experiments.configs import pretrain as pt_config
from tlax.train import checkpoint as ckpt_lib
from tlax.train import finetune
from tlax.train import trainer


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("pretrain")
  result = trainer.train_and_evaluate(pt_config.get_config("quick"),
                                          str(workdir))
  assert result["num_devices"] == jax.local_device_count()
  return str(workdir), finetune.load_checkpoint_trees(str(workdir))


def _finetune(preset, pretrained, tmp_path, **overrides):
  c = ft_config.get_config(preset + ",quick")
  c.finetune.checkpoint = pretrained[0]
  for k, v in overrides.items():
    node = c
    *parents, leaf = k.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = v
  workdir = tmp_path / preset
  result = trainer.train_and_evaluate(c, str(workdir))
  manager = ckpt_lib.checkpoint_manager(workdir / "checkpoints")
  final = finetune.load_checkpoint_trees(str(workdir))
  manager.close()
  return result, final


def _same(a, b):
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_linear_probe_freezes_all_but_the_head(pretrained, tmp_path, caplog):
  src = pretrained[1]["params"]["model"]
  with caplog.at_level(logging.INFO, logger="tlax.transfer"):
    result, final = _finetune("linear_probe", pretrained, tmp_path)
  assert 0.0 <= result["target_accuracy"] <= 100.0
  model = final["params"]["model"]
  for layer in ("conv1", "conv2", "fc1"):
    assert _same(model[layer], src[layer]), layer
  assert not _same(model["head"], src["head"])
  assert "re-initialised params model/head/kernel" in caplog.text
  assert "frozen model/conv1/kernel" in caplog.text


def test_layer_transfer_copies_first_k_and_reinits_the_rest(pretrained,
                                                            tmp_path, caplog):
  src = pretrained[1]["params"]["model"]
  with caplog.at_level(logging.INFO, logger="tlax.transfer"):
    _, final = _finetune("layer_transfer", pretrained, tmp_path,
                         **{"finetune.copy_layers": 1,
                            "finetune.freeze_copied": True})
  model = final["params"]["model"]
  assert _same(model["conv1"], src["conv1"])  # copied and frozen
  assert "re-initialised params model/conv2/kernel" in caplog.text
  assert "re-initialised params model/fc1/kernel" in caplog.text
  assert "re-initialised params model/conv1" not in caplog.text


def test_lora_trains_only_factors_and_head(pretrained, tmp_path):
  src = pretrained[1]["params"]["model"]
  result, final = _finetune("lora", pretrained, tmp_path)
  assert np.isfinite(result["target_accuracy"])
  model = final["params"]["model"]
  for layer in ("conv1", "conv2", "fc1"):
    assert _same(model[layer], src[layer]), layer
  factors = final["params"]["lora"]
  assert set(factors) == {"conv1", "conv2", "fc1"}
  assert float(np.abs(factors["fc1"]["kernel"]["b"]).max()) > 0


@pytest.mark.parametrize("preset", ["l2sp", "output_kl"])
def test_conservative_methods_run(preset, pretrained, tmp_path):
  result, final = _finetune(preset, pretrained, tmp_path)
  assert np.isfinite(result["target_accuracy"])
  if preset == "l2sp":  # the anchor is the checkpoint
    assert _same(final["state"]["l2sp_anchor"]["conv1"],
                 pretrained[1]["params"]["model"]["conv1"])
  else:  # the frozen source model keeps its own (source) head
    assert _same(final["state"]["source_model"]["params"]["head"],
                 pretrained[1]["params"]["model"]["head"])


def test_mismatched_architecture_is_an_error(pretrained, tmp_path):
  with pytest.raises(finetune.CheckpointMismatchError) as e:
    _finetune("full", pretrained, tmp_path,
              **{"model.kwargs.hidden": (24,)})
  assert "model/fc1/kernel: checkpoint (128, 16) vs target (128, 24)" in str(
      e.value)


def test_partitioned_opt_state_checkpoints(tmp_path):
  from tlax.train.state import TrainState
  import optax
  params = {"model": {"body": {"w": jnp.ones(3)}, "head": {"w": jnp.ones(2)}}}
  tx = finetune.apply_lr_rules(optax.adam(0.1), params,
                               (("^model/body/", 0.0),))
  st = TrainState(step=jnp.asarray(3, jnp.int32), params=params, state={},
                  opt_state=tx.init(params),
                  rng=jax.random.key_data(jax.random.key(0)),
                  hparams={"lr": jnp.asarray(1.0)})
  manager = ckpt_lib.checkpoint_manager(tmp_path / "ck")
  ckpt_lib.save_checkpoint(manager, st, {"a": 1})
  back = ckpt_lib.restore_checkpoint(manager, st)
  manager.close()
  assert jax.tree.structure(back) == jax.tree.structure(st)
  assert int(back.step) == 3


def test_pretrain_resumes_from_its_checkpoint(pretrained):
  """Without result.json, a finished pretraining run restores and re-scores."""
  import json
  import os
  workdir = pretrained[0]
  with open(os.path.join(workdir, "result.json")) as f:
    first = json.load(f)
  os.remove(os.path.join(workdir, "result.json"))
  again = trainer.train_and_evaluate(pt_config.get_config("quick"),
                                         workdir)
  assert again["source_test_accuracy"] == first["source_test_accuracy"]
  assert again["source_val_accuracy"] == first["source_val_accuracy"]


_SAVE_ON_LAST_DEVICE = r"""
import sys
import jax, jax.numpy as jnp
import orbax.checkpoint as ocp
device = jax.local_devices()[-1]            # cpu:7 of 8 fake devices
put = lambda x: jax.device_put(x, device)
tree = {"params": {"model": {"head": {"kernel": put(jnp.arange(6.0).reshape(2, 3))}}},
        "state": {"model": {"bn": {"mean": put(jnp.ones(3))}}},
        "step": put(jnp.array(4))}
manager = ocp.CheckpointManager(sys.argv[1])
manager.save(4, args=ocp.args.Composite(state=ocp.args.StandardSave(tree),
                                        config=ocp.args.JsonSave({})))
manager.wait_until_finished()
manager.close()
"""


@pytest.mark.slow
def test_checkpoint_from_devices_this_process_lacks_loads(tmp_path):
  """Pretrained on other devices (a GPU, pmap's replicas), fine-tuned here:
  the trees come back as NumPy arrays. Orbax's own target-free
  restore puts each array on the saved device and fails."""
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  if jax.local_device_count() >= 8:
    pytest.skip("needs fewer than 8 local devices")
  directory = tmp_path / "checkpoints"
  env = {**os.environ, "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  done = subprocess.run([sys.executable, "-c", _SAVE_ON_LAST_DEVICE,
                         str(directory)], env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]

  manager = ocp.CheckpointManager(directory, options=(
      ocp.CheckpointManagerOptions(create=False, read_only=True)))
  with pytest.raises(ValueError):  # what load_checkpoint_trees avoids
    manager.restore(4, args=ocp.args.Composite(
        state=ocp.args.StandardRestore()))
  manager.close()

  trees = finetune.load_checkpoint_trees(str(tmp_path))
  assert trees["step"] == 4
  kernel = trees["params"]["model"]["head"]["kernel"]
  np.testing.assert_array_equal(kernel, np.arange(6.0).reshape(2, 3))
  np.testing.assert_array_equal(trees["state"]["model"]["bn"]["mean"],
                                np.ones(3))
  assert isinstance(kernel, np.ndarray)
