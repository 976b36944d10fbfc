"""experiments/profile_train_step.py: its op-name parsing, and a smoke run
(it profiles a few steps; nothing about their time is asserted)."""

import pytest

from experiments import profile_train_step as prof


def test_layer_of_names_the_module_an_op_came_from():
  cases = {
      "jit(train_step)/transpose(jvp(LeNet))/conv2/transpose": "LeNet/conv2",
      "jit(train_step)/jvp(LeNet)/conv1/dot_general": "LeNet/conv1",
      "jit(train_step)/jvp(LeNet)/concatenate": "LeNet",
      "jit(train_step)/transpose(jvp(LeNet))/jvp(LeNet)/jit(_where)/select_n":
          "LeNet",
      ("jit(train_step)/jvp(DomainDiscriminator)/Dropout_0/jit(_bernoulli)/"
       "jit(_uniform)/while/body/closed_call/add"):
          "DomainDiscriminator/Dropout_0",
      "jit(train_step)/add": "(update)",
      "": "(update)",
  }
  for op_name, layer in cases.items():
    assert prof.layer_of(op_name) == layer, op_name


def test_op_sources_reads_shapes_and_op_names():
  hlo = (
      '  %dot.3 = f32[64,32,48]{2,1,0} dot(%a, %b), lhs_batch_dims={0}, '
      'metadata={op_name="jit(train_step)/transpose(jvp(LeNet))/conv2/'
      'transpose" stack_frame_id=86}\n'
      '  %copy.1 = f32[8]{0} copy(%c)\n')
  src = prof.op_sources(hlo)
  assert src == {"dot.3": ("f32[64,32,48]{2,1,0}",
                           "jit(train_step)/transpose(jvp(LeNet))/conv2/"
                           "transpose")}


def test_profile_smoke_run_attributes_time_to_layers(capsys):
  ops, layers = prof.main(["--method=source_only", "--steps=2",
                           "--warmup=1", "--timed=2", "--top=5"])
  assert ops and all(us >= 0 for us in ops.values())
  assert sum(layers.values()) == pytest.approx(sum(ops.values()))
  # The 16x16 LeNet's convolutions are where a step's work is.
  assert layers["LeNet/conv2"] > 0 and layers["LeNet/conv1"] > 0
  out = capsys.readouterr().out
  assert "LeNet/conv2" in out and "median step" in out
