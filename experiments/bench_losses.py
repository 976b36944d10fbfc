r"""Benchmark of tlax alignment losses against NumPy, PyTorch and the Gram floor.

Times MK-MMD (5 Gaussian kernels, DAN's mean-distance bandwidths), JMMD
(JAN: features with 5 kernels x softmax outputs of 31 classes with one fixed
kernel), Deep CORAL and CMD (5 moments), forward and forward+backward
(gradient with respect to both feature batches), for batch x dim in
{(32, 256), (256, 512), (1024, 2048)}, float32, against

  * NumPy: the efficient formulas (one Gram product), gradients by hand;
  * PyTorch eager, two ways:
      - "library": as the popular PyTorch transfer-learning code computes the
        Gaussian kernels: the pooled batch is expanded to a (2B, 2B, D)
        difference tensor, squared and summed, bandwidth = sum / (n^2 - n),
        bandwidth list = mean * 2**k, sum of exp(-L2 / bw) (written here from
        the description, not copied). Skipped, with the memory it would need,
        when that tensor does not fit a safe budget.
      - "efficient": one Gram product shared by all kernels (autograd).
    For CORAL and CMD the library code already is the efficient formula, so
    one PyTorch version is timed and shown in both columns;
  * the bare Gram matmul of the same shapes, the compute floor: ``z @ z.T``
    for z = [xs; xt] of shape (2B, D) for MMD/JMMD, ``xs.T @ xs`` and
    ``xt.T @ xt`` for CORAL (none for CMD, which has no matrix product).

Times are medians (ms) of repeated calls after warm-up; each implementation
runs in blocks of consecutive calls, the blocks interleaved over three passes
(see ``time_blocks``); ``jax.block_until_ready`` on every JAX result.

COMMAND: python experiments/bench_losses.py
         (``--sizes 256x512`` for one size; ``--quick`` for a smoke run)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

import jax
import jax.numpy as jnp

from tlax import losses

try:
  import torch
except ImportError:  # pragma: no cover
  torch = None
try:
  import threadpoolctl
except ImportError:  # pragma: no cover
  threadpoolctl = None

NUM_KERNELS = 5
NUM_CLASSES = 31
JAN_SOFTMAX_BW = 1.68  # exp(-L2 / 1.68): the JAN softmax-layer kernel
N_MOMENTS = 5
TORCH_NAIVE_BUDGET_GIB = 4.0  # largest (2B, 2B, D) tensor set we allocate

# ---------------------------------------------------------------------------
# tlax.
# ---------------------------------------------------------------------------


def tlax_impls():
  sig_soft = float(np.sqrt(JAN_SOFTMAX_BW / 2))  # 2 sigma^2 = 1.68
  mk = lambda xs, xt: losses.mk_mmd(xs, xt, f"mean:{NUM_KERNELS}")
  jm = lambda xs, xt, ps, pt: losses.jmmd(
      [xs, ps], [xt, pt], (f"mean:{NUM_KERNELS}", sig_soft))
  co = losses.coral
  cm = lambda xs, xt: losses.cmd(xs, xt, N_MOMENTS)

  def both(f, nargs=2):
    fwd = jax.jit(f)
    fb = jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
    return fwd, fb

  return {"mk_mmd": both(mk), "jmmd": both(jm), "coral": both(co),
          "cmd": both(cm)}


def gram_floors():
  gram = jax.jit(lambda z: z @ z.T)
  cov = jax.jit(lambda xs, xt: (xs.T @ xs, xt.T @ xt))
  return gram, cov


# ---------------------------------------------------------------------------
# NumPy (forward and hand-written backward).
# ---------------------------------------------------------------------------


def np_mk_kernel(z, num=NUM_KERNELS, fixed_bw=None):
  """Returns (K, d) with d the list of (exp_k, 1/bw_k), from one Gram."""
  g = z @ z.T
  sq = np.einsum("ij,ij->i", z, z)
  d = sq[:, None] + sq[None, :] - 2 * g
  np.maximum(d, 0, out=d)
  n = z.shape[0]
  if fixed_bw is None:
    bw = d.sum() / (n * n - n) / 2 ** (num // 2)
    bws = [bw * 2**i for i in range(num)]
  else:
    bws = [fixed_bw]
  exps = [np.exp(-d / b) for b in bws]
  k = sum(exps) / len(exps)
  return k, list(zip(exps, [1 / b for b in bws]))


def np_block_coef(ns, nt):
  n = ns + nt
  c = np.empty((n, n), np.float32)
  c[:ns, :ns] = 1 / ns**2
  c[ns:, ns:] = 1 / nt**2
  c[:ns, ns:] = -1 / (ns * nt)
  c[ns:, :ns] = -1 / (ns * nt)
  return c


def np_dist_backward(z, gd):
  """Gradient wrt z of sum(gd * D) with D the pooled squared distances."""
  s = gd + gd.T
  return 2 * z * s.sum(1)[:, None] - 2 * s @ z


def np_kernel_backward(z, gk, parts):
  gd = sum(gk * (-inv / len(parts)) * e for e, inv in parts)
  return np_dist_backward(z, gd)


def np_mk_mmd(xs, xt, grad=False):
  z = np.concatenate([xs, xt])
  k, parts = np_mk_kernel(z)
  c = np_block_coef(len(xs), len(xt))
  loss = float(np.sum(k * c))
  if not grad:
    return loss
  gz = np_kernel_backward(z, c, parts)
  return loss, (gz[: len(xs)], gz[len(xs):])


def np_jmmd(xs, xt, ps, pt, grad=False):
  z1, z2 = np.concatenate([xs, xt]), np.concatenate([ps, pt])
  k1, p1 = np_mk_kernel(z1)
  k2, p2 = np_mk_kernel(z2, fixed_bw=JAN_SOFTMAX_BW)
  c = np_block_coef(len(xs), len(xt))
  loss = float(np.sum(k1 * k2 * c))
  if not grad:
    return loss
  gz = np_kernel_backward(z1, c * k2, p1)  # gradient wrt the features only
  return loss, (gz[: len(xs)], gz[len(xs):])


def np_coral(xs, xt, grad=False):
  d = xs.shape[1]
  cs_x, ct_x = xs - xs.mean(0), xt - xt.mean(0)
  cs = cs_x.T @ cs_x / (len(xs) - 1)
  ct = ct_x.T @ ct_x / (len(xt) - 1)
  diff = cs - ct
  loss = float(np.sum(diff * diff) / (4 * d * d))
  if not grad:
    return loss
  gs = cs_x @ diff / (d * d * (len(xs) - 1))
  gt = -ct_x @ diff / (d * d * (len(xt) - 1))
  return loss, (gs, gt)


def np_cmd(xs, xt, grad=False):
  ms, mt = xs.mean(0), xt.mean(0)
  cs, ct = xs - ms, xt - mt
  pows_s, pows_t = [np.ones_like(cs), cs], [np.ones_like(ct), ct]
  for _ in range(2, N_MOMENTS + 1):
    pows_s.append(pows_s[-1] * cs)
    pows_t.append(pows_t[-1] * ct)
  mom_s = [ms] + [pows_s[k].mean(0) for k in range(2, N_MOMENTS + 1)]
  mom_t = [mt] + [pows_t[k].mean(0) for k in range(2, N_MOMENTS + 1)]
  diffs = [a - b for a, b in zip(mom_s, mom_t)]
  norms = [np.sqrt(np.sum(v * v)) for v in diffs]
  loss = float(sum(norms))
  if not grad:
    return loss
  ns, nt = len(xs), len(xt)
  u = [v / n if n > 0 else 0 * v for v, n in zip(diffs, norms)]
  gs = np.broadcast_to(u[0] / ns, xs.shape).copy()
  gt = np.broadcast_to(-u[0] / nt, xt.shape).copy()
  for k in range(2, N_MOMENTS + 1):
    uk = u[k - 1]
    prev_s = pows_s[k - 1].mean(0) if k > 2 else 0.0
    prev_t = pows_t[k - 1].mean(0) if k > 2 else 0.0
    gs += uk * (k / ns) * (pows_s[k - 1] - prev_s)
    gt -= uk * (k / nt) * (pows_t[k - 1] - prev_t)
  return loss, (gs, gt)


# ---------------------------------------------------------------------------
# PyTorch eager.
# ---------------------------------------------------------------------------


def torch_kernel_library(total, num=NUM_KERNELS, fix_bw=None):
  """Gaussian kernel sum as the popular library computes it."""
  n = total.size(0)
  total0 = total.unsqueeze(0).expand(n, n, total.size(1))
  total1 = total.unsqueeze(1).expand(n, n, total.size(1))
  l2 = ((total0 - total1) ** 2).sum(2)
  if fix_bw is None:
    bandwidth = torch.sum(l2.data) / (n * n - n)
  else:
    bandwidth = torch.tensor(fix_bw)
  bandwidth = bandwidth / (2.0 ** (num // 2))
  bws = [bandwidth * 2.0**i for i in range(num)]
  return sum(torch.exp(-l2 / b) for b in bws)


def torch_kernel_efficient(total, num=NUM_KERNELS, fix_bw=None):
  sq = (total * total).sum(1)
  l2 = (sq[:, None] + sq[None, :] - 2.0 * total @ total.t()).clamp_min(0)
  n = total.size(0)
  if fix_bw is None:
    bandwidth = l2.detach().sum() / (n * n - n)
  else:
    bandwidth = torch.tensor(fix_bw)
  bandwidth = bandwidth / (2.0 ** (num // 2))
  return sum(torch.exp(-l2 / (bandwidth * 2.0**i)) for i in range(num))


def torch_mmd_from_kernel(k, ns):
  xx, yy = k[:ns, :ns], k[ns:, ns:]
  xy, yx = k[:ns, ns:], k[ns:, :ns]
  return xx.mean() + yy.mean() - xy.mean() - yx.mean()


def torch_impls(kind):
  kern = torch_kernel_library if kind == "library" else torch_kernel_efficient

  def mk(xs, xt):
    k = kern(torch.cat([xs, xt])) / NUM_KERNELS
    return torch_mmd_from_kernel(k, xs.size(0))

  def jm(xs, xt, ps, pt):
    k1 = kern(torch.cat([xs, xt])) / NUM_KERNELS
    k2 = kern(torch.cat([ps, pt]), num=1, fix_bw=JAN_SOFTMAX_BW)
    return torch_mmd_from_kernel(k1 * k2, xs.size(0))

  def co(xs, xt):
    d = xs.size(1)
    xm = torch.mean(xs, 0, keepdim=True) - xs
    xc = xm.t() @ xm / (xs.size(0) - 1)
    xmt = torch.mean(xt, 0, keepdim=True) - xt
    xct = xmt.t() @ xmt / (xt.size(0) - 1)
    return torch.sum((xc - xct) * (xc - xct)) / (4 * d * d)

  def cm(xs, xt):
    mx1, mx2 = xs.mean(0), xt.mean(0)
    sx1, sx2 = xs - mx1, xt - mx2
    out = torch.sqrt(((mx1 - mx2) ** 2).sum())
    for k in range(2, N_MOMENTS + 1):
      out = out + torch.sqrt((((sx1**k).mean(0) - (sx2**k).mean(0)) ** 2).sum())
    return out

  return {"mk_mmd": mk, "jmmd": jm, "coral": co, "cmd": cm}


def torch_library_bytes(loss, b, d):
  """Peak bytes of the (2B, 2B, D) tensors the library way allocates."""
  if loss not in ("mk_mmd", "jmmd"):
    return 0
  n = 2 * b
  # difference, its square, and the saved copy for backward (float32)
  return 3 * n * n * d * 4


# ---------------------------------------------------------------------------
# Timing.
# ---------------------------------------------------------------------------


def _block(x):
  return jax.block_until_ready(x)


def time_blocks(fns, rounds, max_seconds, passes=3):
  """Median seconds per call of each function.

  Each function runs in blocks of consecutive calls (after one unrecorded
  warm-up call per block), with the blocks of all functions interleaved over
  ``passes`` passes. Blocks (rather than alternating single calls) keep the
  spinning worker threads of one library (XLA's pool, OpenMP) from competing
  with the next library's; the passes spread load from other processes over
  all columns. Slow functions stop after ``max_seconds`` (>= 3 samples).
  """
  times = {name: [] for name in fns}
  cpu = {name: [] for name in fns}
  per_pass = max(1, -(-rounds // passes))
  for _ in range(passes):
    for name, fn in fns.items():
      if len(times[name]) >= 3 and sum(times[name]) > max_seconds:
        continue
      if isinstance(fn, tuple):  # (setup, fn): e.g. set the thread count
        fn[0]()
        fn = fn[1]
      fn()  # warm-up (compiles JAX on the first pass)
      for _ in range(per_pass):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        times[name].append(time.perf_counter() - t0)
        cpu[name].append(time.process_time() - c0)
        if sum(times[name]) > max_seconds / passes and len(times[name]) >= 1:
          break
      time.sleep(0.05)
  med = {k: statistics.median(v) for k, v in times.items()}
  med.update({f"cpu:{k}": statistics.median(v) for k, v in cpu.items()})
  return med, {k: len(v) for k, v in times.items()}


def _set_threads(n):
  def setup():
    if torch is not None:
      torch.set_num_threads(n)
    if threadpoolctl is not None:
      threadpoolctl.threadpool_limits(n)
  return setup


def with_thread_variants(fns, threads):
  """NumPy / PyTorch entries once per thread count (JAX keeps its pool).

  On a loaded machine OpenMP / OpenBLAS thread teams can be much slower with
  2 threads than with 1 (a spinning barrier waits for a descheduled
  thread); the table reports each comparator at its faster setting.
  """
  out = {}
  for name, fn in fns.items():
    if name.startswith(("numpy", "torch")):
      for n in threads:
        out[f"{name}@{n}"] = (_set_threads(n), fn)
    else:
      out[name] = fn
  return out


def best_thread_variant(med, counts):
  best, cnt, won = {}, {}, {}
  for key, v in med.items():
    if key.startswith("cpu:"):
      best[key] = v
      continue
    name, _, n = key.partition("@")
    if name not in best or v < best[name]:
      best[name], cnt[name] = v, counts[key]
      if n:
        won[name] = int(n)
  return best, cnt, won


def check_agreement(timpl, t_lib, t_eff, b=16, d=24):
  """All implementations give the same loss and gradients (float32)."""
  rng = np.random.default_rng(1)
  xs = rng.normal(size=(b, d)).astype(np.float32)
  xt = (rng.normal(size=(b, d)) * 1.2 + 0.1).astype(np.float32)
  ps = rng.dirichlet(np.ones(NUM_CLASSES), b).astype(np.float32)
  pt = rng.dirichlet(np.ones(NUM_CLASSES), b).astype(np.float32)
  np_fns = {"mk_mmd": np_mk_mmd, "jmmd": np_jmmd, "coral": np_coral,
            "cmd": np_cmd}
  worst = 0.0
  for name, (_, fb) in timpl.items():
    args = (xs, xt, ps, pt) if name == "jmmd" else (xs, xt)
    val, grads = fb(*args)
    refs = [np_fns[name](*args, grad=True)]
    if t_lib is not None:
      for impl in (t_lib, t_eff):
        a = [torch.from_numpy(x).requires_grad_(i < 2)
             for i, x in enumerate(args)]
        out = impl[name](*a)
        out.backward()
        refs.append((float(out.detach()), (a[0].grad.numpy(), a[1].grad.numpy())))
    for rv, (gs, gt) in refs:
      scale = max(float(np.abs(grads[0]).max()), 1e-30)
      err = max(abs(rv - float(val)) / max(abs(float(val)), 1e-30),
                float(np.abs(gs - grads[0]).max()) / scale,
                float(np.abs(gt - grads[1]).max()) / scale)
      worst = max(worst, err)
      if err > 2e-3:
        raise AssertionError(f"{name}: implementations disagree ({err:.2e})")
  return worst


def cpu_name():
  try:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    for line in out.splitlines():
      if line.startswith("Model name"):
        return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--sizes", default="32x256,256x512,1024x2048")
  ap.add_argument("--losses", default="mk_mmd,jmmd,coral,cmd")
  ap.add_argument("--rounds", type=int, default=0,
                  help="rounds per size (default: 30, 15, 7 by size)")
  ap.add_argument("--no-torch", action="store_true")
  ap.add_argument("--no-numpy", action="store_true")
  ap.add_argument("--quick", action="store_true", help="3 rounds, small only")
  ap.add_argument("--threads", default="1,2",
                  help="NumPy/PyTorch thread counts to try; the faster is "
                  "reported")
  args = ap.parse_args(argv)

  sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
  if args.quick:
    sizes, args.rounds = [s for s in sizes if s[0] <= 256], 3
  names = args.losses.split(",")
  threads = [int(t) for t in args.threads.split(",")]
  use_torch = torch is not None and not args.no_torch

  dev = jax.devices()[0]
  print(f"# tlax losses benchmark\n")
  print(f"- device: {dev.platform} ({dev.device_kind}); CPU: {cpu_name()}, "
        f"{os.cpu_count()} cores")
  print(f"- jax {jax.__version__}, numpy {np.__version__}"
        + (f", torch {torch.__version__}" if use_torch else
           ", torch: not used"))
  print(f"- NumPy / PyTorch threads tried: {threads} (the faster is shown); "
        "JAX: XLA's default CPU thread pool")
  print(f"- load average at start: {os.getloadavg()[0]:.1f}")
  print(f"- command: python {' '.join(sys.argv)}\n")

  timpl = tlax_impls()
  gram, cov = gram_floors()
  t_lib = torch_impls("library") if use_torch else None
  t_eff = torch_impls("efficient") if use_torch else None
  np_fns = {"mk_mmd": np_mk_mmd, "jmmd": np_jmmd, "coral": np_coral,
            "cmd": np_cmd}

  worst = check_agreement(timpl, t_lib, t_eff)
  print(f"- all implementations agree on loss and gradients (max relative "
        f"difference {worst:.1e} at B=16, D=24, float32)\n")

  rows = []
  for b, d in sizes:
    rounds = args.rounds or (30 if b <= 32 else 15 if b <= 256 else 7)
    max_s = 20.0 if b <= 256 else 40.0
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(b, d)).astype(np.float32)
    xt = (rng.normal(size=(b, d)) * 1.2 + 0.1).astype(np.float32)
    ps = rng.dirichlet(np.ones(NUM_CLASSES), b).astype(np.float32)
    pt = rng.dirichlet(np.ones(NUM_CLASSES), b).astype(np.float32)
    jx = [jnp.asarray(a) for a in (xs, xt, ps, pt)]
    jz = jnp.concatenate(jx[:2])
    for name in names:
      nargs = 4 if name == "jmmd" else 2
      fwd, fb = timpl[name]
      fns = {
          "tlax fwd": lambda: _block(fwd(*jx[:nargs])),
          "tlax fwd+bwd": lambda: _block(fb(*jx[:nargs])),
      }
      if name in ("mk_mmd", "jmmd"):
        fns["floor"] = lambda: _block(gram(jz))
      elif name == "coral":
        fns["floor"] = lambda: _block(cov(jx[0], jx[1]))
      if not args.no_numpy:
        npf = np_fns[name]
        fns["numpy fwd"] = lambda: npf(xs, xt, *([ps, pt] if nargs == 4 else []))
        fns["numpy fwd+bwd"] = lambda: npf(
            xs, xt, *([ps, pt] if nargs == 4 else []), grad=True)
      skipped = ""
      if use_torch:
        tx = [torch.from_numpy(a) for a in (xs, xt, ps, pt)]

        def tfwd(f):
          def run():
            with torch.no_grad():
              f(*tx[:nargs])
          return run

        def tfb(f):
          def run():
            a = [t.clone().requires_grad_(i < 2) for i, t in
                 enumerate(tx[:nargs])]
            f(*a).backward()
          return run

        need = torch_library_bytes(name, b, d) / 2**30
        if need > TORCH_NAIVE_BUDGET_GIB:
          skipped = (f"skipped: the ({2 * b}, {2 * b}, {d}) float32 difference "
                     f"tensor alone would need {need / 3:.1f} GiB (about "
                     f"{need:.0f} GiB with its square and autograd's copy)")
          print(f"[{name} {b}x{d}] torch library: {skipped}")
        elif name in ("mk_mmd", "jmmd"):
          fns["torch-lib fwd"] = tfwd(t_lib[name])
          fns["torch-lib fwd+bwd"] = tfb(t_lib[name])
        fns["torch-eff fwd"] = tfwd(t_eff[name])
        fns["torch-eff fwd+bwd"] = tfb(t_eff[name])
      fns = with_thread_variants(fns, threads)
      med, counts = time_blocks(fns, rounds, max_s)
      med, counts, won = best_thread_variant(med, counts)
      for pass_ in ("fwd", "fwd+bwd"):
        get = lambda k: med.get(f"{k} {pass_}")
        tl = get("tlax")
        te = get("torch-eff")
        tlib = get("torch-lib")
        if use_torch and name in ("coral", "cmd"):
          tlib = te  # the library code is the efficient formula
        cpu_t, cpu_f = med.get(f"cpu:tlax {pass_}"), med.get("cpu:floor")
        rows.append(dict(
            cpu_ratio=(cpu_t / cpu_f) if cpu_t and cpu_f else None,
            loss=name, size=f"{b}x{d}", pass_=pass_, tlax=tl,
            numpy=get("numpy"), tlib=tlib, teff=te, floor=med.get("floor"),
            lib_note=skipped, n=counts.get(f"tlax {pass_}")))
      print(f"[{name} {b}x{d}] done ({', '.join(f'{k}: {v * 1e3:.2f} ms' for k, v in med.items() if not k.startswith('cpu:'))}; "
            f"comparator threads: {won})", flush=True)

  def ms(v):
    return "—" if v is None else (f"{v * 1e3:.3f}" if v < 1e-2 else
                                  f"{v * 1e3:.1f}")

  def ratio(a, b_):
    return "—" if a is None or b_ is None else f"{a / b_:.2f}"

  print("\n## Times (ms, median) and ratios\n")
  print("Ratios: `tlax/floor` = tlax time / bare Gram matmul time (targets for "
        "MK-MMD: fwd <= 1.3, fwd+bwd <= 2.5), from wall-clock medians and, in "
        "`(cpu)`, from medians of process CPU time (less sensitive to other "
        "processes on a shared machine); `x numpy`, `x lib`, `x eff` = how "
        "many times faster tlax is than that implementation (wall clock).\n")
  print("| loss | B x D | pass | tlax | floor (Gram) | tlax/floor | "
        "tlax/floor (cpu) | NumPy | torch library | torch efficient | "
        "x numpy | x lib | x eff |")
  print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    cpu_ratio = "—" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
    lib = ms(r["tlib"]) if r["tlib"] is not None else (
        "OOM-skip" if r["lib_note"] else "—")
    print(f"| {r['loss']} | {r['size']} | {r['pass_']} | {ms(r['tlax'])} | "
          f"{ms(r['floor'])} | {ratio(r['tlax'], r['floor'])} | "
          f"{cpu_ratio} | "
          f"{ms(r['numpy'])} | {lib} | {ms(r['teff'])} | "
          f"{ratio(r['numpy'], r['tlax'])} | {ratio(r['tlib'], r['tlax'])} | "
          f"{ratio(r['teff'], r['tlax'])} |")
  print(f"\n- load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
  main()
