// tlax native CPU kernels: a stride-1 2-D convolution fused with its bias and
// a 2x2/2 max-pool (NHWC input, HWIO kernel), forward and gradients, as XLA
// FFI handlers. Built on first use by tlax/kernels/native.py.
//
// Forward: y[n, i, j, c] = max over the window (di, dj) in {0,1}^2 of
//   b[c] + sum_{ki, kj, ci} x[n, 2i+di+ki-pt, 2j+dj+kj-pl, ci] w[ki, kj, ci, c]
// (zero outside x), and idx[n, i, j, c] = 2 di + dj of the window's first
// maximum in row-major order (the rule of tlax.models.layers.max_pool).
// Backward: the gradient g of y flows to the window position in idx only.
// Every handler splits the batch over XLA's intra-op thread pool.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int64_t kBlock = 16;  // output channels per block (one V16)

struct Geometry {
  int64_t n, h, w, cin, kh, kw, cout, ph, pw, pt, pl, cpad;
};

inline int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Runs fn(chunk, lo, hi) over `chunks` contiguous ranges of [0, n) on XLA's
// intra-op thread pool and the calling thread. The caller takes chunks too
// and waits only for chunks a pool thread has claimed (so it never waits on
// a task that has not started: no deadlock when every pool thread is busy);
// a task that starts late finds no chunk left.
template <typename Fn>
void ParallelChunks(ffi::ThreadPool& pool, int64_t n, int64_t chunks, Fn fn) {
  struct State {
    std::atomic<int64_t> next{0}, done{0};
  };
  auto state = std::make_shared<State>();
  auto range = [n, chunks](int64_t c) {
    return std::make_pair(n * c / chunks, n * (c + 1) / chunks);
  };
  auto work = [state, range, chunks, fn]() {
    for (int64_t c; (c = state->next.fetch_add(1)) < chunks;) {
      auto [lo, hi] = range(c);
      fn(c, lo, hi);
      state->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t t = 1; t < chunks; ++t) pool.Schedule([work] { work(); });
  work();
  while (state->done.load(std::memory_order_acquire) < chunks)
    std::this_thread::yield();
}

// Four chunks per thread, so that a thread the machine slows down (a busy
// or shared core) takes fewer of them instead of the others waiting for it
// (on a quiet 2-core VM, one chunk per thread gave the same step times).
inline int64_t Chunks(ffi::ThreadPool& pool, int64_t n) {
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  return threads == 1 ? 1 : std::min<int64_t>(n, 4 * threads);
}

// The kernel (kh*kw*cin, cout) copied into cpad >= cout zero-filled columns.
std::vector<float> PaddedColumns(const float* src, int64_t rows, int64_t cols,
                                 int64_t cpad) {
  std::vector<float> out(rows * cpad, 0.0f);
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(&out[r * cpad], src + r * cols, cols * sizeof(float));
  return out;
}

// g from the dimensions of x (n, h, w, cin), the kernel (kh, kw, cin, cout)
// and the pooled output (n, ph, pw, cout), and the padding.
template <typename Dims>
ffi::Error MakeGeometry(Dims xd, Dims wd, Dims yd, int64_t pad_top,
                        int64_t pad_left, Geometry& g) {
  if (xd.size() != 4 || wd.size() != 4 || yd.size() != 4)
    return ffi::Error::InvalidArgument("tlax conv_pool: rank-4 x, w, y");
  g = Geometry{xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3],
               yd[1], yd[2], pad_top, pad_left, RoundUp(wd[3], kBlock)};
  if (g.n < 0 || g.ph < 0 || g.pw < 0 || g.cin < 1 || g.cout < 1)
    return ffi::Error::InvalidArgument("tlax conv_pool: bad shapes");
  return ffi::Error::Success();
}

// 16 floats: one AVX-512 register (two AVX2 ones); loads need 4-byte
// alignment only.
typedef float V16 __attribute__((vector_size(64), aligned(4)));
constexpr int kMaxBlocks = 4;  // channel blocks held in registers at once

inline V16 Load(const float* p) { return *reinterpret_cast<const V16*>(p); }
inline void Store(float* p, V16 v) { *reinterpret_cast<V16*>(p) = v; }

// One image zero-padded to the (2 ph + kh - 1) x (2 pw + kw - 1) window of
// input the pooled outputs read, channels last; and each tap's offset in it
// from a window's top-left corner, tap order (ki, kj, ci) = the kernel's rows.
struct Padded {
  int64_t hp, wp, cin;
  std::vector<float> data;
  std::vector<int64_t> offsets;
  Padded(const Geometry& g)
      : hp(2 * g.ph + g.kh - 1), wp(2 * g.pw + g.kw - 1), cin(g.cin),
        data(hp * wp * g.cin), offsets(g.kh * g.kw * g.cin) {
    for (int64_t ki = 0; ki < g.kh; ++ki)
      for (int64_t kj = 0; kj < g.kw; ++kj)
        for (int64_t ci = 0; ci < g.cin; ++ci)
          offsets[(ki * g.kw + kj) * g.cin + ci] = (ki * wp + kj) * g.cin + ci;
  }
  void Fill(const Geometry& g, const float* xn) {
    std::fill(data.begin(), data.end(), 0.0f);
    for (int64_t r = 0; r < hp; ++r) {
      const int64_t sr = r - g.pt;
      if (sr < 0 || sr >= g.h) continue;
      const int64_t c_lo = std::max<int64_t>(0, g.pl);
      const int64_t c_hi = std::min<int64_t>(wp, g.w + g.pl);
      if (c_hi > c_lo)
        std::memcpy(&data[(r * wp + c_lo) * cin],
                    xn + (sr * g.w + c_lo - g.pl) * cin,
                    (c_hi - c_lo) * cin * sizeof(float));
    }
  }
  // The four conv outputs of pooled (i, j) start at these corners.
  void Corners(int64_t i, int64_t j, const float* c[4]) const {
    c[0] = &data[((2 * i) * wp + 2 * j) * cin];
    c[1] = c[0] + cin;
    c[2] = c[0] + wp * cin;
    c[3] = c[2] + cin;
  }
};

template <int NB>
void FwdBlocks(const Geometry& g, const Padded& xp, const float* wp,
               const float* bp, int64_t c0, float* yn, uint8_t* in) {
  const int64_t taps = g.kh * g.kw * g.cin;
  const int64_t* off = xp.offsets.data();
  for (int64_t i = 0; i < g.ph; ++i) {
    for (int64_t j = 0; j < g.pw; ++j) {
      const float* c[4];
      xp.Corners(i, j, c);
      V16 acc[4][NB];
      for (int k = 0; k < NB; ++k) {
        const V16 b = Load(bp + c0 + 16 * k);
        acc[0][k] = b; acc[1][k] = b; acc[2][k] = b; acc[3][k] = b;
      }
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t o = off[t];
        const float x0 = c[0][o], x1 = c[1][o], x2 = c[2][o], x3 = c[3][o];
        const float* wt = wp + t * g.cpad + c0;
        for (int k = 0; k < NB; ++k) {
          const V16 wv = Load(wt + 16 * k);
          acc[0][k] += x0 * wv;
          acc[1][k] += x1 * wv;
          acc[2][k] += x2 * wv;
          acc[3][k] += x3 * wv;
        }
      }
      const int64_t o = (i * g.pw + j) * g.cout;
      const int64_t cb = std::min<int64_t>(16 * NB, g.cout - c0);
      float v[4][16 * NB];
      for (int p = 0; p < 4; ++p)
        for (int k = 0; k < NB; ++k) Store(&v[p][16 * k], acc[p][k]);
      for (int64_t cc = 0; cc < cb; ++cc) {
        float best = v[0][cc];
        uint8_t arg = 0;
        for (int p = 1; p < 4; ++p)  // NaN propagates, as with jnp.max
          if (best == best && !(v[p][cc] <= best)) best = v[p][cc], arg = p;
        yn[o + c0 + cc] = best;
        in[o + c0 + cc] = arg;
      }
    }
  }
}

// The gradient reaching each window position: gp[(pixel * 4 + p) * cpad + c]
// (zero except at the position in idx).
void WindowGrads(const Geometry& g, const float* gn, const uint8_t* in,
                 float* gp, float* dbp) {
  std::fill(gp, gp + g.ph * g.pw * 4 * g.cpad, 0.0f);
  for (int64_t pix = 0; pix < g.ph * g.pw; ++pix)
    for (int64_t c = 0; c < g.cout; ++c) {
      const float v = gn[pix * g.cout + c];
      gp[(pix * 4 + in[pix * g.cout + c]) * g.cpad + c] = v;
      dbp[c] += v;
    }
}

// dw[t, c0 : c0 + 16 NB] += sum over pixels and positions p of
// x[corner_p + off[t]] * gp[pixel, p, c], TG taps at a time in registers.
template <int NB>
void BwdBlocks(const Geometry& g, const Padded& xp, const float* gp,
               int64_t c0, float* dwp) {
  constexpr int TG = NB == 1 ? 8 : NB == 2 ? 5 : 2;
  const int64_t taps = g.kh * g.kw * g.cin;
  const int64_t* off = xp.offsets.data();
  for (int64_t t0 = 0; t0 < taps; t0 += TG) {
    const int tg = static_cast<int>(std::min<int64_t>(TG, taps - t0));
    V16 acc[TG][NB] = {};
    for (int64_t i = 0; i < g.ph; ++i) {
      for (int64_t j = 0; j < g.pw; ++j) {
        const float* c[4];
        xp.Corners(i, j, c);
        const float* gq = gp + ((i * g.pw + j) * 4) * g.cpad + c0;
        V16 gv[4][NB];
        for (int p = 0; p < 4; ++p)
          for (int k = 0; k < NB; ++k) gv[p][k] = Load(gq + p * g.cpad + 16 * k);
        for (int u = 0; u < TG; ++u) {
          if (u >= tg) break;
          const int64_t o = off[t0 + u];
          const float x0 = c[0][o], x1 = c[1][o], x2 = c[2][o], x3 = c[3][o];
          for (int k = 0; k < NB; ++k)
            acc[u][k] += x0 * gv[0][k] + x1 * gv[1][k] + x2 * gv[2][k] +
                         x3 * gv[3][k];
        }
      }
    }
    for (int u = 0; u < tg; ++u)
      for (int k = 0; k < NB; ++k) {
        float* d = dwp + (t0 + u) * g.cpad + c0 + 16 * k;
        Store(d, Load(d) + acc[u][k]);
      }
  }
}

// Calls F<NB> over the channel blocks, kMaxBlocks at a time.
template <template <int> class F, typename... Args>
void ForBlocks(const Geometry& g, Args&&... args) {
  for (int64_t c0 = 0; c0 < g.cpad; c0 += 16 * kMaxBlocks) {
    switch (std::min<int64_t>(kMaxBlocks, (g.cpad - c0) / 16)) {
      case 1: F<1>::Run(g, args..., c0); break;
      case 2: F<2>::Run(g, args..., c0); break;
      case 3: F<3>::Run(g, args..., c0); break;
      default: F<4>::Run(g, args..., c0); break;
    }
  }
}

template <int NB> struct Fwd {
  static void Run(const Geometry& g, const Padded& xp, const float* wp,
                  const float* bp, float* yn, uint8_t* in, int64_t c0) {
    FwdBlocks<NB>(g, xp, wp, bp, c0, yn, in);
  }
};

template <int NB> struct Bwd {
  static void Run(const Geometry& g, const Padded& xp, const float* gp,
                  float* dwp, int64_t c0) {
    BwdBlocks<NB>(g, xp, gp, c0, dwp);
  }
};

ffi::Error ConvPoolFwdImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x,
                           ffi::Buffer<ffi::F32> w,
                           ffi::Buffer<ffi::F32> b,
                           ffi::ResultBuffer<ffi::F32> y,
                           ffi::ResultBuffer<ffi::U8> idx, int64_t pad_top,
                           int64_t pad_left) {
  auto xd = x.dimensions(), wd = w.dimensions(), yd = y->dimensions();
  Geometry g;
  if (auto e = MakeGeometry(xd, wd, yd, pad_top, pad_left, g); e.failure())
    return e;
  const int64_t taps = g.kh * g.kw * g.cin;
  std::vector<float> wp = PaddedColumns(w.typed_data(), taps, g.cout, g.cpad);
  std::vector<float> bp = PaddedColumns(b.typed_data(), 1, g.cout, g.cpad);
  const int64_t xs = g.h * g.w * g.cin, ys = g.ph * g.pw * g.cout;
  const float* xd0 = x.typed_data();
  float* yd0 = y->typed_data();
  uint8_t* id0 = idx->typed_data();
  ParallelChunks(pool, g.n, Chunks(pool, g.n),
                 [&](int64_t, int64_t lo, int64_t hi) {
    Padded xp(g);
    for (int64_t n = lo; n < hi; ++n) {
      xp.Fill(g, xd0 + n * xs);
      ForBlocks<Fwd>(g, xp, wp.data(), bp.data(), yd0 + n * ys, id0 + n * ys);
    }
  });
  return ffi::Error::Success();
}

// dw (kh, kw, cin, cout) and db (cout) from x, idx and g = dL/dy.
ffi::Error ConvPoolBwdParamsImpl(ffi::ThreadPool pool,
                                 ffi::Buffer<ffi::F32> x,
                                 ffi::Buffer<ffi::U8> idx,
                                 ffi::Buffer<ffi::F32> gy,
                                 ffi::ResultBuffer<ffi::F32> dw,
                                 ffi::ResultBuffer<ffi::F32> db,
                                 int64_t pad_top, int64_t pad_left) {
  auto xd = x.dimensions(), wd = dw->dimensions(), yd = gy.dimensions();
  Geometry g;
  if (auto e = MakeGeometry(xd, wd, yd, pad_top, pad_left, g); e.failure())
    return e;
  const int64_t taps = g.kh * g.kw * g.cin;
  const int64_t chunks = Chunks(pool, g.n), per = (taps + 1) * g.cpad;
  // Each chunk's dw (taps rows) and db (one more row), summed below.
  std::vector<float> part(chunks * per, 0.0f);
  const int64_t xs = g.h * g.w * g.cin, ys = g.ph * g.pw * g.cout;
  const float* xd0 = x.typed_data();
  const float* gd0 = gy.typed_data();
  const uint8_t* id0 = idx.typed_data();
  ParallelChunks(pool, g.n, chunks, [&](int64_t c, int64_t lo, int64_t hi) {
    Padded xp(g);
    std::vector<float> gp(g.ph * g.pw * 4 * g.cpad);
    float* dwp = &part[c * per];
    float* dbp = dwp + taps * g.cpad;
    for (int64_t n = lo; n < hi; ++n) {
      xp.Fill(g, xd0 + n * xs);
      WindowGrads(g, gd0 + n * ys, id0 + n * ys, gp.data(), dbp);
      ForBlocks<Bwd>(g, xp, gp.data(), dwp);
    }
  });
  std::vector<float> dwp(per, 0.0f);
  for (int64_t c = 0; c < chunks; ++c)
    for (int64_t k = 0; k < per; ++k) dwp[k] += part[c * per + k];
  const float* dbp = &dwp[taps * g.cpad];
  float* dws = dw->typed_data();
  for (int64_t r = 0; r < taps; ++r)
    std::memcpy(dws + r * g.cout, &dwp[r * g.cpad], g.cout * sizeof(float));
  std::memcpy(db->typed_data(), dbp, g.cout * sizeof(float));
  return ffi::Error::Success();
}

// dx (n, h, w, cin) from w, idx and g = dL/dy: per image, the gradient of
// each (window position, tap) pair, z[t][q] = sum_c w[t, c] gq[c][q] for the
// 4 ph pw window positions q (vectorised over q), then added into the
// padded input's gradient at corner(q) + off[t] and cut to x's extent.
ffi::Error ConvPoolBwdInputImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> w,
                                ffi::Buffer<ffi::U8> idx,
                                ffi::Buffer<ffi::F32> gy,
                                ffi::ResultBuffer<ffi::F32> dx,
                                int64_t pad_top, int64_t pad_left) {
  auto xd = dx->dimensions(), wd = w.dimensions(), yd = gy.dimensions();
  Geometry g;
  if (auto e = MakeGeometry(xd, wd, yd, pad_top, pad_left, g); e.failure())
    return e;
  const int64_t taps = g.kh * g.kw * g.cin;
  const float* ws = w.typed_data();
  const int64_t nq = 4 * g.ph * g.pw, nqp = RoundUp(nq, 16);
  const int64_t xs = g.h * g.w * g.cin, ys = g.ph * g.pw * g.cout;
  ParallelChunks(pool, g.n, Chunks(pool, g.n),
                 [&](int64_t, int64_t lo, int64_t hi) {
  Padded xp(g);  // geometry and tap offsets only; data holds dx (padded)
  std::vector<float> gq(g.cout * nqp), z(nqp);
  for (int64_t n = lo; n < hi; ++n) {
    const float* gn = gy.typed_data() + n * ys;
    const uint8_t* in = idx.typed_data() + n * ys;
    std::fill(gq.begin(), gq.end(), 0.0f);
    for (int64_t pix = 0; pix < g.ph * g.pw; ++pix)
      for (int64_t c = 0; c < g.cout; ++c)
        gq[c * nqp + pix * 4 + in[pix * g.cout + c]] = gn[pix * g.cout + c];
    std::fill(xp.data.begin(), xp.data.end(), 0.0f);
    for (int64_t t = 0; t < taps; ++t) {
      const float* wt = ws + t * g.cout;
      for (int64_t q0 = 0; q0 < nqp; q0 += 16) {
        V16 acc = {};
        for (int64_t c = 0; c < g.cout; ++c)
          acc += wt[c] * Load(&gq[c * nqp + q0]);
        Store(&z[q0], acc);
      }
      const int64_t o = xp.offsets[t];
      for (int64_t i = 0; i < g.ph; ++i)
        for (int64_t j = 0; j < g.pw; ++j) {
          const int64_t q = (i * g.pw + j) * 4;
          const int64_t base = ((2 * i) * xp.wp + 2 * j) * g.cin + o;
          xp.data[base] += z[q];
          xp.data[base + g.cin] += z[q + 1];
          xp.data[base + xp.wp * g.cin] += z[q + 2];
          xp.data[base + (xp.wp + 1) * g.cin] += z[q + 3];
        }
    }
    float* dxn = dx->typed_data() + n * xs;
    std::fill(dxn, dxn + xs, 0.0f);
    for (int64_t r = 0; r < xp.hp; ++r) {
      const int64_t sr = r - g.pt;
      if (sr < 0 || sr >= g.h) continue;
      const int64_t c_lo = std::max<int64_t>(0, g.pl);
      const int64_t c_hi = std::min<int64_t>(xp.wp, g.w + g.pl);
      if (c_hi > c_lo)
        std::memcpy(dxn + (sr * g.w + c_lo - g.pl) * g.cin,
                    &xp.data[(r * xp.wp + c_lo) * g.cin],
                    (c_hi - c_lo) * g.cin * sizeof(float));
    }
  }
  });
  return ffi::Error::Success();
}

// ---------------------------------------------------------------------------
// Batched matmul: c[b] = op(a[b]) @ op(b[b]), op = identity or transpose
// (flags), float32, batch-major contiguous operands. For the many small
// products of Winograd's convolution (64 products of 256 x 32 @ 32 x 48 for
// LeNet's conv2), where XLA:CPU's library call reaches a fraction of the
// machine's matmul speed. Each product: op(b) packed into k x npad rows,
// then register tiles of kRows rows x NB * 16 columns.
constexpr int kRows = 6;

template <int NB, int R>
inline void Tile(const float* a, int64_t sam, int64_t sak, const float* bp,
                 int64_t npad, int64_t k, int64_t c0, float* c, int64_t n) {
  V16 acc[R][NB] = {};
  for (int64_t q = 0; q < k; ++q) {
    V16 bv[NB];
    for (int j = 0; j < NB; ++j) bv[j] = Load(bp + q * npad + c0 + 16 * j);
    for (int r = 0; r < R; ++r) {
      const float av = a[r * sam + q * sak];
      for (int j = 0; j < NB; ++j) acc[r][j] += av * bv[j];
    }
  }
  const int64_t cb = std::min<int64_t>(16 * NB, n - c0);
  for (int r = 0; r < R; ++r) {
    if (cb == 16 * NB) {
      for (int j = 0; j < NB; ++j) Store(c + r * n + c0 + 16 * j, acc[r][j]);
    } else {
      float tmp[16 * NB];
      for (int j = 0; j < NB; ++j) Store(tmp + 16 * j, acc[r][j]);
      std::memcpy(c + r * n + c0, tmp, cb * sizeof(float));
    }
  }
}

template <int NB>
void Product(const float* a, int64_t sam, int64_t sak, const float* bp,
             int64_t npad, int64_t m, int64_t k, int64_t c0, float* c,
             int64_t n) {
  int64_t i = 0;
  for (; i + kRows <= m; i += kRows)
    Tile<NB, kRows>(a + i * sam, sam, sak, bp, npad, k, c0, c + i * n, n);
  for (; i < m; ++i)
    Tile<NB, 1>(a + i * sam, sam, sak, bp, npad, k, c0, c + i * n, n);
}

ffi::Error BatchedMatmulImpl(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> a,
                             ffi::Buffer<ffi::F32> b,
                             ffi::ResultBuffer<ffi::F32> c, bool trans_a,
                             bool trans_b) {
  auto ad = a.dimensions(), bd = b.dimensions(), cd = c->dimensions();
  if (ad.size() != 3 || bd.size() != 3 || cd.size() != 3)
    return ffi::Error::InvalidArgument("tlax bmm: rank-3 operands");
  const int64_t batch = ad[0];
  const int64_t m = trans_a ? ad[2] : ad[1], k = trans_a ? ad[1] : ad[2];
  const int64_t kb = trans_b ? bd[2] : bd[1], n = trans_b ? bd[1] : bd[2];
  if (bd[0] != batch || cd[0] != batch || kb != k || cd[1] != m ||
      cd[2] != n)
    return ffi::Error::InvalidArgument("tlax bmm: shapes do not fit");
  // a[r, q] at r * sam + q * sak.
  const int64_t sam = trans_a ? 1 : k, sak = trans_a ? m : 1;
  const int64_t npad = RoundUp(n, kBlock);
  const float* as = a.typed_data();
  const float* bs = b.typed_data();
  float* cs = c->typed_data();
  ParallelChunks(pool, batch, Chunks(pool, batch),
                 [&](int64_t, int64_t lo, int64_t hi) {
    std::vector<float> bp(k * npad, 0.0f);
    for (int64_t e = lo; e < hi; ++e) {
      const float* be = bs + e * k * n;
      for (int64_t q = 0; q < k; ++q)
        for (int64_t j = 0; j < n; ++j)
          bp[q * npad + j] = trans_b ? be[j * k + q] : be[q * n + j];
      const float* ae = as + e * m * k;
      float* ce = cs + e * m * n;
      for (int64_t c0 = 0; c0 < npad; c0 += 16 * kMaxBlocks) {
        switch (std::min<int64_t>(kMaxBlocks, (npad - c0) / 16)) {
          case 1: Product<1>(ae, sam, sak, bp.data(), npad, m, k, c0, ce, n);
            break;
          case 2: Product<2>(ae, sam, sak, bp.data(), npad, m, k, c0, ce, n);
            break;
          case 3: Product<3>(ae, sam, sak, bp.data(), npad, m, k, c0, ce, n);
            break;
          default: Product<4>(ae, sam, sak, bp.data(), npad, m, k, c0, ce, n);
            break;
        }
      }
    }
  });
  return ffi::Error::Success();
}

}  // namespace

namespace {

using F32 = ffi::Buffer<ffi::F32>;
using U8 = ffi::Buffer<ffi::U8>;

// Every handler gets XLA's intra-op thread pool; the conv_pool ones also
// take the convolution's top and left padding.
inline auto WithPool() { return ffi::Ffi::Bind().Ctx<ffi::ThreadPool>(); }

template <typename Binding>
auto WithPads(Binding b) {
  return std::move(b).template Attr<int64_t>("pad_top").template Attr<int64_t>(
      "pad_left");
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    TlaxConvPoolFwd, ConvPoolFwdImpl,
    WithPads(WithPool().Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Ret<U8>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    TlaxConvPoolBwdParams, ConvPoolBwdParamsImpl,
    WithPads(WithPool().Arg<F32>().Arg<U8>().Arg<F32>().Ret<F32>().Ret<F32>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    TlaxConvPoolBwdInput, ConvPoolBwdInputImpl,
    WithPads(WithPool().Arg<F32>().Arg<U8>().Arg<F32>().Ret<F32>()));

XLA_FFI_DEFINE_HANDLER_SYMBOL(TlaxBatchedMatmul, BatchedMatmulImpl,
                              WithPool()
                                  .Arg<F32>()
                                  .Arg<F32>()
                                  .Ret<F32>()
                                  .Attr<bool>("trans_a")
                                  .Attr<bool>("trans_b"));
