"""Classification by comparison against semantic bias.

* :mod:`tlax.prototypes.episodes`: N-way K-shot episodes, few-shot accuracy
  of a frozen encoder (nearest class mean and a linear probe).
* :mod:`tlax.prototypes.bias`: the bias measures on ``colourdigits``.
* :mod:`tlax.prototypes.runner`: the family runner: trains through
  :func:`tlax.train.train_and_evaluate`, then adds the bias measures and
  few-shot accuracies to ``result.json``.

The methods are in :mod:`tlax.methods.prototypes`, the losses in
:mod:`tlax.losses.contrastive`, the benchmark domains in
:mod:`tlax.data.semantic_bias`.
"""

from tlax.prototypes.episodes import check_prototypes
from tlax.prototypes.episodes import few_shot_accuracy
from tlax.prototypes.episodes import sample_episodes
