"""Safe transfer: defects a student inherits from its pretrained teacher.

:mod:`tlax.safety.attacks` plants and measures the defects (a BadNets
backdoor, PGD adversarial examples, defect inheritance rates);
:mod:`tlax.safety.runner` is the family runner (poisoned teacher -> student
-> ``result.json`` with ``target_accuracy`` and
``defect_inheritance_rate``). The defect-reducing fine-tuning methods (DELTA,
magnitude pruning, ReMoS) are in :mod:`tlax.methods.safe`.
"""

from tlax.safety.attacks import adversarial_inheritance_rate
from tlax.safety.attacks import apply_trigger
from tlax.safety.attacks import attack_success_rate
from tlax.safety.attacks import cross_entropy_objective
from tlax.safety.attacks import feature_objective
from tlax.safety.attacks import mapped_target_class
from tlax.safety.attacks import pgd
from tlax.safety.attacks import poison
from tlax.safety.attacks import trigger_pattern
