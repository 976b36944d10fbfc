"""The docstring examples of tlax.losses run and give what they show."""

import doctest

import pytest

from tlax.losses import adversarial, dynamic, mmd_losses, moments


@pytest.mark.parametrize("module", [adversarial, dynamic, mmd_losses, moments])
def test_docstring_examples(module):
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.failed == 0
