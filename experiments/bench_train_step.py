r"""Training steps per second: tlax vs a PyTorch eager implementation.

The same step in both: a LeNet (``--net``: ``dann``, the DANN paper's conv
5x5 32 -> pool -> conv 5x5 48 -> pool -> fc 100 -> fc 100 -> fc 10, SAME
padding, tlax's default; ``tll``, Transfer-Learning-Library's 28x28 LeNet,
VALID convs 20 / 50 -> bottleneck 256 -> fc 10), a batch of 64
source + 64 target digits, SGD with momentum 0.9, weight decay 5e-4 and the
DANN learning-rate annealing. Two steps:

* ``source_only``: cross-entropy on the 64 source images (the target batch is
  not used);
* ``dann``: the 128 images through the network (one call, or one per
  domain: ``--forward`` / ``--torch_forward``), cross-entropy on the source,
  gradient reversal with DANN's lambda schedule into a 1024-1024-1 domain
  classifier (ReLU, dropout 0.5) on the flattened conv features (``dann``)
  or the bottleneck (``tll``).

tlax runs :func:`tlax.train.make_train_step` (the trainer's jitted step, with
the method objects of :mod:`tlax.methods` and the trainer's optimiser) twice
over (``--frameworks``): ``tlax``, the default models (``nn.Conv``, the same
program on every backend), and ``tlax_kernels``, the opt-in CPU convolution
forms of :mod:`tlax.kernels` (``--kernels_conv_impl``, default ``"auto"``:
Winograd, patch matmuls and the native C++ conv + pool kernel where they
were measured faster);
PyTorch runs an eager ``nn.Module`` written here, with ``torch`` using every
core (``torch.set_num_threads(os.cpu_count())``). Inputs are fixed device
arrays/tensors (no data loading in either). Each measurement is the median
over ``--steps`` timed steps after ``--warmup`` steps, each step synchronised
(``block_until_ready`` / eager PyTorch); the two frameworks alternate for
``--rounds`` rounds so that a change of machine load hits both, and the
reported figure is the median over rounds. Where the frameworks run:

* by default both in this process;
* ``--isolate`` (``=round``): every round of every framework in a fresh
  process, so each round also pays a cold start (the first steps after a
  compile are slower);
* ``--isolate=framework``: one long-lived worker process per framework,
  built and warmed up once; this process tells the workers in turn to time
  a round (over a pipe) and collects the medians. Each framework then runs
  as in a training script of its own: neither one's thread pool (XLA's
  Eigen pool, PyTorch's OpenMP threads, which keep spinning after their
  work) is in the other's process. On a 2-core VM (AMD EPYC,
  docs/results_deep_da.md, "Speed") tlax's source-only step took 14.5 ms
  in a shared process against 8.7-10.3 ms alone or in its own worker.

On a GPU (JAX's default backend "gpu"), PyTorch runs on ``cuda`` too
(``--torch_device=auto``); ``--tf32`` sets float32 matmul/convolution
precision in both frameworks alike, and ``--sync=end`` times queued steps
(one wait per round) instead of waiting for each.

torch is imported only here, never by tlax; install the CPU wheel with
``pip install torch==2.13.0`` (see the README).

COMMAND:
  python experiments/bench_train_step.py --net=tll --image_size=28 --rounds=5
  python experiments/bench_train_step.py --net=dann --image_size=16 --rounds=5
  python experiments/bench_train_step.py --net=dann --image_size=16 --rounds=5 --isolate=framework
  (on a GPU add --steps=200 --warmup=20: a step takes under a millisecond)

Figures measured so far: docs/results_deep_da.md ("Speed").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH = 64
NUM_CLASSES = 10
LR, MOMENTUM, WEIGHT_DECAY = 0.01, 0.9, 5e-4


def _data(image_size, channels, seed=0):
  r = np.random.RandomState(seed)
  shape = (BATCH, image_size, image_size, channels)
  return {"xs": r.rand(*shape).astype(np.float32),
          "ys": r.randint(0, NUM_CLASSES, BATCH).astype(np.int32),
          "ws": np.ones(BATCH, np.float32),
          "xt": r.rand(*shape).astype(np.float32)}


def time_steps(one_step, wait, n, sync):
  """Seconds per step of ``n`` calls of ``one_step()`` (a list).

  ``wait(out)`` blocks until the step that returned ``out`` is done.
  ``sync="every"``: each step waited for and timed (one entry per step);
  ``"end"``: the ``n`` steps queued and waited for once (one entry, the
  mean: throughput with asynchronous dispatch).
  """
  if sync == "end":
    t = time.perf_counter()
    for _ in range(n):
      out = one_step()
    wait(out)
    return [(time.perf_counter() - t) / n]
  times = []
  for _ in range(n):
    t = time.perf_counter()
    wait(one_step())
    times.append(time.perf_counter() - t)
  return times


# ----------------------------------------------------------------------------
# tlax
# ----------------------------------------------------------------------------
# The two LeNets: tlax model kwargs, the DANN feature layer, and the PyTorch
# layer sizes (conv widths, padding, fc widths after the flatten).
NETS = {
    # DANN paper (Ganin et al. 2016, Fig. 4), tlax's default LeNet: SAME
    # convolutions 32 / 48, fc 100-100, domain classifier on the flat conv
    # features.
    "dann": {"kwargs": {}, "feature": "auto", "convs": (32, 48), "pad": 2,
             "hidden": (100, 100), "bottleneck": None},
    # Transfer-Learning-Library's LeNet for 28x28 digits (the network of the
    # reference scale figures): VALID convolutions 20 / 50, an 800-d flat
    # feature, a 256-d bottleneck read by the domain classifier. The same
    # 1024-1024-1 domain classifier with dropout as "dann" (TLL's has
    # BatchNorm instead of dropout).
    "tll": {"kwargs": {"conv_features": (20, 50), "padding": "VALID",
                       "hidden": (), "bottleneck": 256},
            "feature": "bottleneck", "convs": (20, 50), "pad": 0,
            "hidden": (), "bottleneck": 256},
}


def _flops(compiled) -> float:
  """XLA's FLOP count of a compiled program (cost analysis)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # older jax: one dict per computation
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def tlax_step_fn(method_name, data, total_steps, conv_impl="auto",
                 net="dann", forward="auto", sync="every"):
  """``(run(n) -> seconds per step list)`` for the trainer's jitted step.

  ``forward``: :data:`tlax.methods.common.FORWARD_MODE` while the step is
  traced (how the two domains go through the network).
  """
  import jax  # pylint: disable=g-import-not-at-top
  import importlib  # pylint: disable=g-import-not-at-top
  from tlax.methods import common as networks  # pylint: disable=g-import-not-at-top
  from tlax.train import make_schedule  # pylint: disable=g-import-not-at-top
  from tlax.train import make_train_step  # pylint: disable=g-import-not-at-top
  from tlax.train.state import create_train_state  # pylint: disable=g-import-not-at-top
  from tlax.train.trainer import build_method  # pylint: disable=g-import-not-at-top

  config = importlib.import_module(
      f"experiments.configs.{method_name}").get_config()
  config.model.name = "lenet"
  config.model.kwargs = {"conv_impl": conv_impl, **NETS[net]["kwargs"]}
  if method_name == "dann":
    config.method.feature_layer = NETS[net]["feature"]
  config.steps = total_steps
  config.optimizer.name = "sgd"
  config.optimizer.lr = LR
  config.optimizer.momentum = MOMENTUM
  config.optimizer.weight_decay = WEIGHT_DECAY
  config.optimizer.schedule = "dann"

  class _Task:
    num_classes = NUM_CLASSES

  method = build_method(config, _Task())
  batch = jax.device_put(data)
  state, tx = create_train_state(config, method, batch)
  jitted = make_train_step(method, tx, make_schedule(config))
  saved_mode, networks.FORWARD_MODE = networks.FORWARD_MODE, forward
  try:  # trace and compile once, with that mode; the timed calls reuse it
    step = jitted.lower(state, batch).compile()
  finally:
    networks.FORWARD_MODE = saved_mode
  holder = {"state": state}
  flops = _flops(step)
  if "tlax_" in step.as_text():
    # XLA does not count the work of tlax's native kernels (custom calls):
    # count the same step compiled without them (the same arithmetic).
    saved_native = os.environ.get("TLAX_NATIVE")
    os.environ["TLAX_NATIVE"] = "0"
    networks.FORWARD_MODE = forward
    try:
      flops = _flops(make_train_step(method, tx, make_schedule(config)).lower(
          state, batch).compile())
    finally:
      networks.FORWARD_MODE = saved_mode
      if saved_native is None:
        os.environ.pop("TLAX_NATIVE")
      else:
        os.environ["TLAX_NATIVE"] = saved_native

  def one_step():
    holder["state"], metrics = step(holder["state"], batch)
    return metrics["loss"]

  def run(n):
    return time_steps(one_step, jax.block_until_ready, n, sync)

  run.flops = flops  # XLA's count for one step (without native kernels)
  run.compiled = step  # the compiled step (its HLO text names the ops)
  return run


# ----------------------------------------------------------------------------
# PyTorch eager
# ----------------------------------------------------------------------------
def torch_device(name="auto"):
  """``"auto"``: ``"cuda"`` when torch sees a GPU and JAX runs on one, else
  ``"cpu"`` (the two frameworks always run on the same kind of device)."""
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  if name != "auto":
    return name
  on_gpu = jax.default_backend() == "gpu"
  return "cuda" if on_gpu and torch.cuda.is_available() else "cpu"


def torch_step_fn(method_name, data, total_steps, threads=0, net="dann",
                  forward="concat", device="cpu", sync="every"):
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top

  torch.set_num_threads(threads or os.cpu_count() or 1)
  torch.manual_seed(0)
  size, channels = data["xs"].shape[1], data["xs"].shape[3]
  spec = NETS[net]

  class LeNet(nn.Module):

    def __init__(self):
      super().__init__()
      c1, c2 = spec["convs"]
      pad = spec["pad"]
      self.features = nn.Sequential(
          nn.Conv2d(channels, c1, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
          nn.Conv2d(c1, c2, 5, padding=pad), nn.ReLU(), nn.MaxPool2d(2),
          nn.Flatten())
      side = size
      for _ in range(2):
        side = (side + 2 * pad - 4) // 2
      width = c2 * side * side
      layers = []
      for h in spec["hidden"]:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
      self.trunk = nn.Sequential(*layers)
      self.bottleneck = None
      if spec["bottleneck"]:
        self.bottleneck = nn.Sequential(
            nn.Linear(width, spec["bottleneck"]), nn.ReLU())
        width = spec["bottleneck"]
      self.head = nn.Linear(width, NUM_CLASSES)
      self.flat = width if spec["bottleneck"] else c2 * side * side

    def forward(self, x):
      f = self.features(x)
      h = self.trunk(f)
      if self.bottleneck is not None:
        h = f = self.bottleneck(h)
      return self.head(h), f

  class GradReverse(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, lam):
      ctx.lam = lam
      return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
      return -ctx.lam * g, None

  model = LeNet().to(device)
  modules = [model]
  disc = None
  if method_name == "dann":
    disc = nn.Sequential(nn.Linear(model.flat, 1024), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(1024, 1024), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(1024, 1)).to(device)
    modules.append(disc)
  params = [p for m in modules for p in m.parameters()]
  opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM,
                        weight_decay=WEIGHT_DECAY)
  to_nchw = lambda a: torch.from_numpy(np.ascontiguousarray(
      a.transpose(0, 3, 1, 2))).to(device)
  xs, xt = to_nchw(data["xs"]), to_nchw(data["xt"])
  ys = torch.from_numpy(data["ys"].astype(np.int64)).to(device)
  dom = torch.cat([torch.ones(BATCH), torch.zeros(BATCH)]).to(device)
  ce, bce = nn.CrossEntropyLoss(), nn.BCEWithLogitsLoss()
  counter = {"step": 0}

  def one_step():
    p = min(counter["step"] / total_steps, 1.0)
    for g in opt.param_groups:
      g["lr"] = LR / (1 + 10 * p) ** 0.75
    opt.zero_grad(set_to_none=True)
    if disc is None:
      logits, _ = model(xs)
      loss = ce(logits, ys)
    else:
      lam = 2.0 / (1.0 + np.exp(-10 * p)) - 1.0
      if forward == "split":  # one forward per domain, as tlax's "split"
        (logits, fs), (_, ft) = model(xs), model(xt)
        f = torch.cat([fs, ft])
      else:
        logits, f = model(torch.cat([xs, xt]))
      loss = ce(logits[:BATCH], ys) + bce(
          disc(GradReverse.apply(f, lam))[:, 0], dom)
    loss.backward()
    opt.step()
    counter["step"] += 1
    return loss

  def run(n):  # .item() waits for the step (also on a GPU)
    return time_steps(one_step, lambda loss: loss.item(), n, sync)

  return run


def matmul_peak(frameworks, n=2048, repeats=10, device="cpu"):
  """GFLOP/s of one ``n x n`` float32 matmul per framework (median).

  The ceiling a step made of matmuls and convolutions can approach on this
  machine: a step's GF/s over it is the fraction of that ceiling it reaches.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  r = np.random.RandomState(0)
  a, b = (r.rand(n, n).astype(np.float32) for _ in range(2))
  calls = {}
  if {"tlax", "tlax_kernels"} & set(frameworks):
    dot, ja, jb = jax.jit(jnp.dot), jnp.asarray(a), jnp.asarray(b)
    calls["tlax"] = lambda: dot(ja, jb).block_until_ready()
  if "torch" in frameworks:
    import torch  # pylint: disable=g-import-not-at-top
    ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
    wait = (torch.cuda.synchronize if device.startswith("cuda")
            else lambda: None)
    calls["torch"] = lambda: (ta @ tb, wait())
  peak = {}
  for fw, call in calls.items():
    call()  # each call waits for its product
    times = time_steps(call, lambda _: None, repeats, "every")
    peak[fw] = 2 * n ** 3 / statistics.median(times) / 1e9
  return peak


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--image_size", type=int, default=28)
  p.add_argument("--channels", type=int, default=1)
  p.add_argument("--methods", default="source_only,dann")
  p.add_argument("--steps", type=int, default=50, help="timed steps a round")
  p.add_argument("--warmup", type=int, default=10)
  p.add_argument("--rounds", type=int, default=5)
  p.add_argument("--kernels_conv_impl", default="auto",
                 help="tlax Conv implementation: auto | patches | im2col | "
                 "winograd | xla")
  p.add_argument("--net", default="dann", choices=sorted(NETS),
                 help="dann: the DANN paper's LeNet (tlax's default); tll: "
                 "Transfer-Learning-Library's 28x28 LeNet + bottleneck 256")
  p.add_argument("--forward", default="auto",
                 choices=("auto", "concat", "split"),
                 help="tlax: source and target through the network in one "
                 "call (concat) or one call each (split); auto: split on the "
                 "CPU for networks without BatchNorm")
  p.add_argument("--torch_forward", default="concat",
                 choices=("concat", "split"),
                 help="the same choice for the PyTorch step")
  p.add_argument("--frameworks", default="tlax,tlax_kernels,torch",
                 help="tlax (default models), tlax_kernels (opt-in CPU "
                 "kernels), torch")
  p.add_argument("--torch_device", default="auto",
                 help="cpu | cuda | auto (cuda when JAX runs on a GPU and "
                 "torch sees one)")
  p.add_argument("--sync", default="every", choices=("every", "end"),
                 help="every: wait for each step and time it (median over "
                 "steps); end: queue --steps steps, wait once, time / steps "
                 "(throughput with asynchronous dispatch, as a training loop "
                 "that does not read the loss each step)")
  p.add_argument("--tf32", default="on", choices=("on", "off"),
                 help="GPU float32 matmuls and convolutions in both "
                 "frameworks: on = TF32 (JAX's default; torch's "
                 "allow_tf32 set True), off = full float32 (JAX precision "
                 "'highest', torch allow_tf32 False)")
  p.add_argument("--torch_threads", type=int, default=0,
                 help="torch.set_num_threads (0: all cores)")
  p.add_argument("--json", default=None, help="write the results here")
  p.add_argument("--isolate", nargs="?", const="round", default="off",
                 choices=("off", "round", "framework"),
                 help="off: both frameworks in this process; round (the "
                 "bare flag): each round of each framework in a fresh "
                 "process; framework: one long-lived process per framework, "
                 "warmed up once, told by this one when to time a round. "
                 "All alternate tlax / torch round by round")
  p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  p.add_argument("--matmul_peak", default="on", choices=("on", "off"),
                 help="also time the 2048 x 2048 matmul ceiling")
  args = p.parse_args(argv)

  import jax  # pylint: disable=g-import-not-at-top
  frameworks = args.frameworks.split(",")
  if args.tf32 == "off":
    jax.config.update("jax_default_matmul_precision", "highest")
  if "torch" in frameworks:
    import torch  # pylint: disable=g-import-not-at-top
    torch.backends.cuda.matmul.allow_tf32 = args.tf32 == "on"
    torch.backends.cudnn.allow_tf32 = args.tf32 == "on"
  tdev = torch_device(args.torch_device) if "torch" in frameworks else "-"
  if args.worker:
    return _worker(args, args.worker, tdev)
  argv = list(sys.argv[1:] if argv is None else argv)
  if args.isolate == "round":
    results = _isolated(args, frameworks, argv)
  elif args.isolate == "framework":
    results = _with_workers(args, frameworks, argv)
  else:
    results = _in_process(args, frameworks, tdev)
  peak = (matmul_peak(frameworks, device=tdev) if args.matmul_peak == "on"
          else {})
  _report(args, results, peak, tdev)
  return results


def _summary(per_round, gflop=None):
  """One method's result: per framework the median and the round times."""
  result = {fw: {"median_ms": statistics.median(v),
                 "rounds_ms": [round(x, 2) for x in v]}
            for fw, v in per_round.items()}
  if gflop is not None:
    result["gflop"] = gflop
  return result


def _runner(fw, name, data, args, tdev):
  """``run(n)`` for framework ``fw``'s step ``name`` (module docstring)."""
  total = args.warmup + args.rounds * args.steps
  if fw in ("tlax", "tlax_kernels"):
    impl = "xla" if fw == "tlax" else args.kernels_conv_impl
    return tlax_step_fn(name, data, total, impl, args.net, args.forward,
                        args.sync)
  return torch_step_fn(name, data, total, args.torch_threads, args.net,
                       args.torch_forward, tdev, args.sync)


def _alternate(args, frameworks, time_round, gflops):
  """The rounds of every method, the frameworks alternating round by round.

  ``time_round(fw, name)``: median ms of one round of ``--steps`` steps;
  ``gflops``: method -> XLA's FLOP count of tlax's step (or absent).
  """
  results = {}
  for name in args.methods.split(","):
    per_round = {fw: [] for fw in frameworks}
    for r in range(args.rounds):
      for fw in frameworks:
        per_round[fw].append(time_round(fw, name))
      print(f"{name} round {r + 1}/{args.rounds}: "
            + ", ".join(f"{fw} {v[-1]:.2f} ms"
                        for fw, v in per_round.items()), flush=True)
    gflop = gflops.get(name)
    results[name] = _summary(per_round,
                             gflop / 1e9 if gflop is not None else None)
  return results


def _in_process(args, frameworks, tdev):
  """Both frameworks in this process, alternating round by round."""
  data = _data(args.image_size, args.channels)
  runners = {(fw, name): _runner(fw, name, data, args, tdev)
             for name in args.methods.split(",") for fw in frameworks}
  for run in runners.values():
    run(args.warmup)  # compile / warm caches
  gflops = {name: run.flops for (fw, name), run in runners.items()
            if fw == "tlax"}
  return _alternate(
      args, frameworks,
      lambda fw, name: statistics.median(runners[fw, name](args.steps)) * 1e3,
      gflops)


_REPLY = "@@"  # marks the worker's protocol lines on its stdout


def _worker(args, fw, tdev):
  """``--worker=fw``: builds and warms up ``fw``'s steps, says so, then
  times one round of ``--steps`` for each method name read from stdin
  (an empty line ends it). Replies are JSON on lines starting with
  :data:`_REPLY`."""
  data = _data(args.image_size, args.channels)
  runners = {}
  for name in args.methods.split(","):
    runners[name] = _runner(fw, name, data, args, tdev)
    runners[name](args.warmup)
  flops = {n: getattr(r, "flops", None) for n, r in runners.items()}
  print(_REPLY + json.dumps(flops), flush=True)
  for line in sys.stdin:
    name = line.strip()
    if not name:
      break
    ms = statistics.median(runners[name](args.steps)) * 1e3
    print(_REPLY + json.dumps(ms), flush=True)
  return {}


def _with_workers(args, frameworks, argv):
  """``--isolate=framework``: one worker process per framework (built and
  warmed up one after the other, then idle between its rounds), the
  rounds alternating between them as in :func:`_in_process`."""
  import subprocess  # pylint: disable=g-import-not-at-top
  base = [a for a in argv if not a.startswith("--isolate")]
  procs, flops = {}, {}

  def reply(fw):
    for line in procs[fw].stdout:
      if line.startswith(_REPLY):
        return json.loads(line[len(_REPLY):])
    raise RuntimeError(f"the {fw} worker exited (exit code "
                       f"{procs[fw].wait()}); its errors are above")

  try:
    for fw in frameworks:
      procs[fw] = subprocess.Popen(
          [sys.executable, os.path.abspath(__file__), *base,
           f"--frameworks={fw}", f"--worker={fw}", "--matmul_peak=off"],
          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
      flops[fw] = reply(fw)

    def time_round(fw, name):
      procs[fw].stdin.write(name + "\n")
      procs[fw].stdin.flush()
      return reply(fw)

    return _alternate(args, frameworks, time_round, flops.get("tlax", {}))
  finally:
    for proc in procs.values():
      if proc.poll() is None:
        proc.stdin.close()
        proc.wait()


def _isolated(args, frameworks, argv):
  """``--isolate``: each (round, framework) in a fresh process of this
  script (``--rounds=1``), alternating as :func:`_in_process` does."""
  import subprocess  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  base = [a for a in argv if not a.startswith("--isolate")]
  per = {}  # method -> framework -> [round ms]
  gflop = {}
  with tempfile.TemporaryDirectory() as tmp:
    for r in range(args.rounds):
      for fw in frameworks:
        out = os.path.join(tmp, f"{fw}_{r}.json")
        cmd = [sys.executable, os.path.abspath(__file__), *base,
               "--rounds=1", f"--frameworks={fw}", f"--json={out}",
               "--matmul_peak=off"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
          res = json.load(f)["results"]
        for name, v in res.items():
          per.setdefault(name, {}).setdefault(fw, []).extend(
              v[fw]["rounds_ms"])
          if "gflop" in v:
            gflop[name] = v["gflop"]
        print(f"round {r + 1}/{args.rounds} {fw}: "
              + ", ".join(f"{n} {v[fw]['rounds_ms'][0]:.2f} ms"
                          for n, v in res.items()), flush=True)
  return {name: _summary(fws, gflop.get(name)) for name, fws in per.items()}


def _report(args, results, peak, tdev):
  """Prints the table and writes ``--json``."""
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  header = (f"device: {device.platform} ({getattr(device, 'device_kind', '')})"
            f", {os.cpu_count()} CPU cores visible; LeNet ({args.net}) "
            f"{args.image_size}x{args.image_size}x{args.channels}, batch "
            f"{BATCH} + {BATCH}, SGD momentum {MOMENTUM}; tlax_kernels conv "
            f"{args.kernels_conv_impl}, forward {args.forward}; torch forward "
            f"{args.torch_forward}, device {tdev}, threads "
            f"{args.torch_threads or os.cpu_count()}; median ms/step over "
            f"{args.rounds} rounds of {args.steps} steps, sync {args.sync}"
            + {"round": ", one process per round and framework",
               "framework": ", one warm process per framework"}.get(
                   args.isolate, "")
            + (f", tf32 {args.tf32}" if device.platform == "gpu" else ""))
  print(header)
  print(f"{'method':<12} {'framework':<13} {'ms':>8} {'steps/s':>8} "
        f"{'speed-up vs torch':>18} {'GFLOP':>7} {'GF/s':>7}")
  for name, r in results.items():
    q = r.get("torch", {}).get("median_ms", float("nan"))
    gf = r.get("gflop", float("nan"))  # the same step: the same count
    for fw in [f for f in r if isinstance(r[f], dict)]:
      t = r[fw]["median_ms"]
      print(f"{name:<12} {fw:<13} {t:8.2f} {1e3 / t:8.1f} {q / t:17.2f}x "
            f"{gf:7.3f} {gf * 1e3 / t:7.1f}")
  print("GFLOP: XLA's cost analysis of tlax's compiled step (compiled "
        "without tlax's native kernels, whose work XLA does not count); "
        "GF/s: that count over each framework's step time")
  if peak:
    print("matmul ceiling (2048 x 2048 float32, GF/s): "
          + ", ".join(f"{fw} {v:.1f}" for fw, v in peak.items()))
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"header": header, "results": results,
                 "matmul_gflops": peak}, f, indent=1)


if __name__ == "__main__":
  main()
