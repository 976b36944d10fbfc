"""The module graph of tlax: acyclic, and tlax.train imports no plots.

The graph has an edge from a module to every tlax module it imports,
anywhere in it (at the top or inside a function): a late import only hides
a cycle until the function runs. Edges to a module's own parent packages are
left out (Python runs them first in any case).
"""

import ast
import pathlib
import random
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def _modules() -> dict[str, pathlib.Path]:
  mods = {}
  for path in sorted((REPO / "tlax").rglob("*.py")):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
      parts = parts[:-1]
    mods[".".join(parts)] = path
  return mods


def import_graph() -> dict[str, set[str]]:
  """``{module: {tlax modules it imports}}`` from the source (ast)."""
  mods = _modules()

  def owner(name):  # the module a dotted name lives in
    while name and name not in mods:
      name = name.rpartition(".")[0]
    return name or None

  graph = {m: set() for m in mods}
  for m, path in mods.items():
    package = m if path.name == "__init__.py" else m.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      names = []
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          parts = package.split(".")[:len(package.split(".")) - node.level + 1]
          base = ".".join(parts + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                 for a in node.names]
      for name in names:
        target = owner(name) if name.startswith("tlax") else None
        if target and target != m and not m.startswith(target + "."):
          graph[m].add(target)
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One cycle of ``graph`` as a list of modules, or None."""
  state, stack = {}, []

  def visit(v):
    state[v] = "open"
    stack.append(v)
    for w in sorted(graph[v]):
      if state.get(w) == "open":
        return stack[stack.index(w):] + [w]
      if w not in state:
        found = visit(w)
        if found:
          return found
    state[v] = "done"
    stack.pop()
    return None

  for v in sorted(graph):
    if v not in state:
      found = visit(v)
      if found:
        return found
  return None


def test_find_cycle_finds_a_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c",
                                                               "a"]


def test_tlax_has_no_import_cycle():
  cycle = find_cycle(import_graph())
  assert cycle is None, " -> ".join(cycle)


def test_training_package_does_not_import_plots_or_kernels():
  graph = import_graph()
  for module, targets in graph.items():
    if module.startswith("tlax.train"):
      bad = {t for t in targets if t.startswith(("tlax.viz", "tlax.kernels"))}
      assert not bad, (module, bad)
    if module.startswith(("tlax.models", "tlax.shallow", "tlax.losses")):
      # Models opt in to kernels only inside tlax.models.layers.conv.
      bad = {t for t in targets if t.startswith("tlax.kernels")}
      assert module == "tlax.models.layers" or not bad, (module, bad)


@pytest.mark.slow
def test_every_module_imports_in_a_fresh_interpreter_in_random_order():
  mods = sorted(m for m in _modules() if not m.endswith("__main__"))
  order = mods[:]
  random.Random(0).shuffle(order)
  code = ("import importlib, sys\n"
          f"for name in {order!r}:\n"
          "  importlib.import_module(name)\n"
          "print(len([m for m in sys.modules if m.startswith('tlax')]))\n")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert int(proc.stdout.split()[-1]) >= len(mods)
