// 2-D NHWC convolutions on oneDNN, registered with XLA as FFI custom-call targets.
//
// Built and loaded by jaxcnn/cpu/onednn/_build.py (g++, against the running jaxlib's FFI headers
// and the oneDNN wheel's headers); called from jaxcnn/cpu/onednn/_ops.py. Three targets:
//
//   jaxcnn_onednn_conv_fwd          (x, w, b) -> y       y = act(conv(x, w) + b), fused post-ops
//   jaxcnn_onednn_conv_bwd_data     (dy, w)   -> dx      the input gradient
//   jaxcnn_onednn_conv_bwd_weights  (x, dy)   -> dw, db  the kernel and bias gradients
//
// Layouts: x, dx [N, H, W, C]; w, dw [KH, KW, C / G, OC] (output channel o belongs to group
// o / (OC / G)); b, db [OC]; y, dy [N, OH, OW, OC]; all row-major (XLA's default layout).
// Element types: float32 or bfloat16 (all buffers of a call the same; dw and db are summed in
// float32 and rounded once).
//
// Attributes: `geom`, int64[19] = {H, W, C, KH, KW, OC, OH, OW, SH, SW, PT, PB, PL, PR, DH, DW,
// G, HAS_BIAS, ACT}: strides S*, padding P* (top, bottom, left, right; >= 0), dilations D* (1 =
// none, as in lax), groups G; ACT is one of the Act codes below, with `alpha` and `beta` its
// oneDNN eltwise parameters. N is read from the buffers.
//
// Threads. A call runs on the thread XLA calls it from plus XLA's intra-op thread pool (the FFI
// ThreadPool), never on a pool of its own: the batch is cut into one chunk per pool thread and
// each chunk runs a single-threaded oneDNN primitive (OpenMP set to one thread on that thread), so
// oneDNN's OpenMP threads never start and never compete with XLA's. A batch smaller than the pool
// runs in one chunk on the calling thread with oneDNN's OpenMP threads (as many as the pool has).
// The kernel gradient of each chunk is a partial sum, added up in float32 by the calling thread.
//
// Primitives are created once per (kind, dtype, chunk size, geometry, activation, threads) and
// cached for the life of the process; scratchpads are per thread (oneDNN's user scratchpad
// mode), so one primitive runs on several threads at once.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

#if DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_OMP
extern "C" void omp_set_num_threads(int);
static void SetOneDnnThreads(int n) { omp_set_num_threads(n); }
#elif DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_SEQ
static void SetOneDnnThreads(int) {}
#else
#error "jaxcnn's oneDNN extension needs an OpenMP or sequential oneDNN CPU build"
#endif

namespace ffi = xla::ffi;
using dnnl::memory;

namespace {

enum Kind : int { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };
enum DType : int { kF32 = 0, kBF16 = 1 };
enum Act : int { kNone = 0, kRelu = 1, kElu = 2, kLogistic = 3, kTanh = 4, kGeluErf = 5,
                 kGeluTanh = 6 };
constexpr int kGeomSize = 19;

struct Geom {
  int64_t h, w, c, kh, kw, oc, oh, ow, sh, sw, pt, pb, pl, pr, dh, dw, g, has_bias, act;
};

bool ParseGeom(const int64_t* v, int64_t n, Geom* g, std::string* err) {
  if (n != kGeomSize) {
    *err = "geom must have " + std::to_string(kGeomSize) + " entries, got " + std::to_string(n);
    return false;
  }
  *g = Geom{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
            v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17], v[18]};
  bool ok = g->h > 0 && g->w > 0 && g->c > 0 && g->kh > 0 && g->kw > 0 && g->oc > 0 &&
            g->oh > 0 && g->ow > 0 && g->sh > 0 && g->sw > 0 && g->pt >= 0 && g->pb >= 0 &&
            g->pl >= 0 && g->pr >= 0 && g->dh > 0 && g->dw > 0 && g->g > 0 &&
            g->c % g->g == 0 && g->oc % g->g == 0 && g->act >= kNone && g->act <= kGeluTanh;
  int64_t eh = (g->kh - 1) * g->dh + 1, ew = (g->kw - 1) * g->dw + 1;
  ok = ok && (g->h + g->pt + g->pb - eh) / g->sh + 1 == g->oh &&
       (g->w + g->pl + g->pr - ew) / g->sw + 1 == g->ow && g->h + g->pt + g->pb >= eh &&
       g->w + g->pl + g->pr >= ew;
  if (!ok) *err = "inconsistent convolution geometry";
  return ok;
}

dnnl::engine& Engine() {
  static dnnl::engine* engine = new dnnl::engine(dnnl::engine::kind::cpu, 0);
  return *engine;
}

dnnl::stream& Stream() {
  thread_local dnnl::stream stream(Engine());
  return stream;
}

memory::data_type DnnlType(int dtype) {
  return dtype == kBF16 ? memory::data_type::bf16 : memory::data_type::f32;
}

// ---------------------------------------------------------------------------- descriptors
memory::desc ActDesc(int64_t n, int64_t c, int64_t h, int64_t w, memory::data_type dt) {
  return memory::desc({n, c, h, w}, dt, memory::format_tag::nhwc);
}

// The weights as jaxcnn stores them, [KH, KW, C / G, OC], in oneDNN's logical order.
memory::desc UserWeightsDesc(const Geom& g, memory::data_type dt) {
  int64_t icg = g.c / g.g, ocg = g.oc / g.g;
  int64_t s_kh = g.kw * icg * g.oc, s_kw = icg * g.oc;
  if (g.g == 1) return memory::desc({g.oc, icg, g.kh, g.kw}, dt, {1, g.oc, s_kh, s_kw});
  return memory::desc({g.g, ocg, icg, g.kh, g.kw}, dt, {ocg, 1, g.oc, s_kh, s_kw});
}

memory::desc AnyWeightsDesc(const Geom& g, memory::data_type dt) {
  int64_t icg = g.c / g.g, ocg = g.oc / g.g;
  if (g.g == 1) return memory::desc({g.oc, icg, g.kh, g.kw}, dt, memory::format_tag::any);
  return memory::desc({g.g, ocg, icg, g.kh, g.kw}, dt, memory::format_tag::any);
}

dnnl::algorithm EltwiseAlg(int act) {
  switch (act) {
    case kRelu: return dnnl::algorithm::eltwise_relu;
    case kElu: return dnnl::algorithm::eltwise_elu;
    case kLogistic: return dnnl::algorithm::eltwise_logistic;
    case kTanh: return dnnl::algorithm::eltwise_tanh;
    case kGeluErf: return dnnl::algorithm::eltwise_gelu_erf;
    default: return dnnl::algorithm::eltwise_gelu_tanh;
  }
}

struct ConvDims {
  memory::dims strides, dilates, pad_l, pad_r;
};

ConvDims Dims(const Geom& g) {
  return {{g.sh, g.sw}, {g.dh - 1, g.dw - 1}, {g.pt, g.pl}, {g.pb, g.pr}};
}

// ---------------------------------------------------------------------------- primitive cache
struct Entry {
  int kind = 0;
  dnnl::primitive prim;
  memory::desc weights;   // the primitive's (diff_)weights layout
  memory::desc scratch;   // its scratchpad
  std::string impl;
};

struct Stats {
  std::atomic<int64_t> created{0}, calls{0}, chunks{0};
  std::atomic<int64_t> cpu_ns[3] = {{0}, {0}, {0}};  // thread CPU time in the chunks, per kind
} g_stats;

int64_t ThreadCpuNs() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

std::mutex g_cache_mu;
std::map<std::string, std::shared_ptr<const Entry>> g_cache;

std::string Key(int kind, int dtype, int64_t mb, const Geom& g, float alpha, float beta,
                int nthr) {
  std::string k = std::to_string(kind) + "|" + std::to_string(dtype) + "|" +
                  std::to_string(mb) + "|" + std::to_string(nthr);
  const int64_t* v = &g.h;
  for (int i = 0; i < kGeomSize; ++i) k += "," + std::to_string(v[i]);
  uint32_t a, b;
  std::memcpy(&a, &alpha, 4);
  std::memcpy(&b, &beta, 4);
  return k + "|" + std::to_string(a) + "|" + std::to_string(b);
}

dnnl::convolution_forward::primitive_desc FwdPd(int dtype, int64_t mb, const Geom& g,
                                                float alpha, float beta, bool post_ops) {
  auto dt = DnnlType(dtype);
  ConvDims d = Dims(g);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (post_ops && g.act != kNone) {
    dnnl::post_ops po;
    po.append_eltwise(EltwiseAlg(static_cast<int>(g.act)), alpha, beta);
    attr.set_post_ops(po);
  }
  auto src = ActDesc(mb, g.c, g.h, g.w, dt), dst = ActDesc(mb, g.oc, g.oh, g.ow, dt);
  auto wei = AnyWeightsDesc(g, dt);
  if (g.has_bias) {
    memory::desc bias({g.oc}, dt, memory::format_tag::a);
    return dnnl::convolution_forward::primitive_desc(
        Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
        wei, bias, dst, d.strides, d.dilates, d.pad_l, d.pad_r, attr);
  }
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src, wei,
      dst, d.strides, d.dilates, d.pad_l, d.pad_r, attr);
}

std::shared_ptr<const Entry> Create(int kind, int dtype, int64_t mb, const Geom& g, float alpha,
                                    float beta) {
  auto e = std::make_shared<Entry>();
  e->kind = kind;
  auto dt = DnnlType(dtype);
  ConvDims d = Dims(g);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (kind == kFwd) {
    auto pd = FwdPd(dtype, mb, g, alpha, beta, /*post_ops=*/true);
    e->prim = dnnl::convolution_forward(pd);
    e->weights = pd.weights_desc();
    e->scratch = pd.scratchpad_desc();
    e->impl = pd.impl_info_str();
  } else if (kind == kBwdData) {
    auto hint = FwdPd(dtype, mb, g, alpha, beta, /*post_ops=*/false);
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, ActDesc(mb, g.c, g.h, g.w, dt),
        AnyWeightsDesc(g, dt), ActDesc(mb, g.oc, g.oh, g.ow, dt), d.strides, d.dilates, d.pad_l,
        d.pad_r, hint, attr);
    e->prim = dnnl::convolution_backward_data(pd);
    e->weights = pd.weights_desc();
    e->scratch = pd.scratchpad_desc();
    e->impl = pd.impl_info_str();
  } else {
    auto hint = FwdPd(dtype, mb, g, alpha, beta, /*post_ops=*/false);
    // The kernel and bias gradients of a chunk are float32 partial sums (also for bfloat16).
    auto f32 = memory::data_type::f32;
    memory::desc dbias({g.oc}, f32, memory::format_tag::a);
    dnnl::convolution_backward_weights::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, ActDesc(mb, g.c, g.h, g.w, dt),
        AnyWeightsDesc(g, f32), dbias, ActDesc(mb, g.oc, g.oh, g.ow, dt), d.strides, d.dilates,
        d.pad_l, d.pad_r, hint, attr);
    e->prim = dnnl::convolution_backward_weights(pd);
    e->weights = pd.diff_weights_desc();
    e->scratch = pd.scratchpad_desc();
    e->impl = pd.impl_info_str();
  }
  g_stats.created++;
  return e;
}

// The cached primitive; creates it (with oneDNN set to `nthr` threads on this thread) if new.
std::shared_ptr<const Entry> Get(int kind, int dtype, int64_t mb, const Geom& g, float alpha,
                                 float beta, int nthr) {
  std::string key = Key(kind, dtype, mb, g, alpha, beta, nthr);
  std::lock_guard<std::mutex> lock(g_cache_mu);
  auto it = g_cache.find(key);
  if (it != g_cache.end()) return it->second;
  SetOneDnnThreads(nthr);
  auto e = Create(kind, dtype, mb, g, alpha, beta);
  g_cache.emplace(key, e);
  return e;
}

// ---------------------------------------------------------------------------- scratch memory
struct AlignedBuffer {
  void* ptr = nullptr;
  size_t size = 0;
  ~AlignedBuffer() { std::free(ptr); }
  void* Get(size_t n) {
    if (n > size) {
      std::free(ptr);
      size = (n + 4095) / 4096 * 4096;
      ptr = std::aligned_alloc(64, size);
      if (ptr == nullptr) {
        size = 0;
        throw std::bad_alloc();
      }
    }
    return ptr;
  }
};

// Scratchpads of the primitives this thread runs (kept between calls).
void* ThreadScratch(size_t n) {
  thread_local AlignedBuffer buf;
  return n ? buf.Get(n) : nullptr;
}

struct OwnedBuffer {
  std::unique_ptr<AlignedBuffer> buf = std::make_unique<AlignedBuffer>();
  void* Get(size_t n) { return buf->Get(n ? n : 1); }
};

// ---------------------------------------------------------------------------- threads
// The batch cut into chunks: `sizes[i]` examples starting at `starts[i]`, each run with `nthr`
// oneDNN threads.
struct Plan {
  std::vector<int64_t> starts, sizes;
  int nthr = 1;
};

// 0: the batch split over XLA's pool (the default); 1: one chunk with oneDNN's own OpenMP
// threads (for comparison).
std::atomic<int> g_threading{0};

Plan MakePlan(int64_t n, int64_t pool_threads) {
  Plan p;
  int64_t t = std::max<int64_t>(1, pool_threads);
  if (t == 1 || n < t || g_threading.load() == 1) {
    p.starts = {0};
    p.sizes = {n};
    p.nthr = static_cast<int>(t);
    return p;
  }
  int64_t q = n / t, r = n % t, s = 0;
  for (int64_t i = 0; i < t; ++i) {
    int64_t m = q + (i < r ? 1 : 0);
    p.starts.push_back(s);
    p.sizes.push_back(m);
    s += m;
  }
  return p;
}

// Runs f(0), ..., f(n - 1): the calling thread and up to n - 1 tasks on XLA's pool claim indices
// from a shared counter, so the call finishes even if no pool thread is free. Tasks that start
// after every index is claimed return at once (they own a reference to the shared state).
struct ParallelState {
  explicit ParallelState(int64_t n) : n(n) {}
  const int64_t n;
  std::atomic<int64_t> next{0};
  int64_t done = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::string error;
  std::function<void(int64_t)> fn;

  void Work() {
    for (int64_t i; (i = next.fetch_add(1)) < n;) {
      std::string err;
      try {
        fn(i);
      } catch (const dnnl::error& e) {
        err = std::string("oneDNN: ") + e.what();
      } catch (const std::exception& e) {
        err = e.what();
      }
      std::lock_guard<std::mutex> lock(mu);
      if (!err.empty() && error.empty()) error = err;
      if (++done == n) cv.notify_all();
    }
  }
};

std::string ParallelFor(ffi::ThreadPool& pool, int kind, int64_t n,
                        std::function<void(int64_t)> fn) {
  auto st = std::make_shared<ParallelState>(n);
  st->fn = [kind, fn = std::move(fn)](int64_t i) {
    int64_t t0 = ThreadCpuNs();
    fn(i);
    g_stats.chunks++;
    g_stats.cpu_ns[kind] += ThreadCpuNs() - t0;
  };
  for (int64_t i = 1; i < n; ++i) pool.Schedule([st] { st->Work(); });
  st->Work();
  std::unique_lock<std::mutex> lock(st->mu);
  st->cv.wait(lock, [&] { return st->done == st->n; });
  // Tasks still to start see next >= n and never call fn, whose captures die with this frame.
  return st->error;
}

// At most this many threads per call (0: as many as XLA's pool has).
std::atomic<int> g_max_threads{0};

int64_t PoolThreads(ffi::ThreadPool& pool) {
  int64_t n = std::max<int64_t>(1, pool.num_threads());
  int cap = g_max_threads.load();
  return cap > 0 ? std::min<int64_t>(n, cap) : n;
}

// ---------------------------------------------------------------------------- helpers
ffi::Error Fail(const std::string& what) {
  return ffi::Error(ffi::ErrorCode::kInternal, "jaxcnn oneDNN convolution: " + what);
}

bool DTypeOf(ffi::DataType t, int* dtype) {
  if (t == ffi::DataType::F32) *dtype = kF32;
  else if (t == ffi::DataType::BF16) *dtype = kBF16;
  else return false;
  return true;
}

bool Is4d(const ffi::AnyBuffer& b, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  auto d = b.dimensions();
  return d.size() == 4 && d[0] == d0 && d[1] == d1 && d[2] == d2 && d[3] == d3;
}

size_t Bytes(int dtype) { return dtype == kBF16 ? 2 : 4; }

uint16_t ToBf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

void Reorder(const memory::desc& from, void* src, const memory::desc& to, void* dst) {
  memory a(from, Engine(), src), b(to, Engine(), dst);
  dnnl::reorder(a, b).execute(Stream(), a, b);
  Stream().wait();
}

// `w` in the primitive's layout: the user's buffer itself when the layouts agree, else a
// reordered copy in `storage`.
void* WeightsFor(const Entry& e, const memory::desc& user, void* w, OwnedBuffer* storage) {
  if (e.weights == user) return w;
  void* p = storage->Get(e.weights.get_size());
  Reorder(user, w, e.weights, p);
  return p;
}

struct Chunked {
  Plan plan;
  std::vector<std::shared_ptr<const Entry>> entries;  // per chunk
};

Chunked Prepare(int kind, int dtype, int64_t n, const Geom& g, float alpha, float beta,
                int64_t pool_threads) {
  Chunked c;
  c.plan = MakePlan(n, pool_threads);
  for (int64_t m : c.plan.sizes) c.entries.push_back(Get(kind, dtype, m, g, alpha, beta,
                                                         c.plan.nthr));
  return c;
}

void Execute(const Entry& e, int nthr, std::unordered_map<int, memory>&& args) {
  SetOneDnnThreads(nthr);
  if (e.scratch.get_size() > 0) {
    args.emplace(DNNL_ARG_SCRATCHPAD,
                 memory(e.scratch, Engine(), ThreadScratch(e.scratch.get_size())));
  }
  e.prim.execute(Stream(), args);
  Stream().wait();
}

// ---------------------------------------------------------------------------- handlers
ffi::Error ConvFwd(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer b,
                   ffi::Result<ffi::AnyBuffer> y, ffi::Span<const int64_t> geom, float alpha,
                   float beta) {
  Geom g;
  std::string err;
  if (!ParseGeom(geom.begin(), geom.size(), &g, &err)) return Fail(err);
  int dtype;
  if (!DTypeOf(x.element_type(), &dtype)) return Fail("unsupported element type");
  int64_t n = x.dimensions().size() == 4 ? x.dimensions()[0] : -1;
  if (!Is4d(x, n, g.h, g.w, g.c) || !Is4d(*y, n, g.oh, g.ow, g.oc) ||
      !Is4d(w, g.kh, g.kw, g.c / g.g, g.oc) || w.element_type() != x.element_type() ||
      y->element_type() != x.element_type() || b.element_type() != x.element_type() ||
      b.element_count() != g.oc)
    return Fail("buffer shapes do not match the geometry");
  if (n == 0) return ffi::Error::Success();
  g_stats.calls++;
  try {
    auto dt = DnnlType(dtype);
    Chunked c = Prepare(kFwd, dtype, n, g, alpha, beta, PoolThreads(pool));
    auto user = UserWeightsDesc(g, dt);
    // One reordered copy of the weights per distinct primitive layout.
    std::vector<OwnedBuffer> store(c.entries.size());
    std::vector<void*> wp(c.entries.size());
    for (size_t i = 0; i < c.entries.size(); ++i) {
      wp[i] = nullptr;
      for (size_t j = 0; j < i && !wp[i]; ++j)
        if (c.entries[j]->weights == c.entries[i]->weights) wp[i] = wp[j];
      if (!wp[i]) wp[i] = WeightsFor(*c.entries[i], user, w.untyped_data(), &store[i]);
    }
    char* xp = static_cast<char*>(x.untyped_data());
    char* yp = static_cast<char*>(y->untyped_data());
    size_t xs = g.h * g.w * g.c * Bytes(dtype), ys = g.oh * g.ow * g.oc * Bytes(dtype);
    err = ParallelFor(pool, kFwd, c.plan.sizes.size(), [&](int64_t i) {
      const Entry& e = *c.entries[i];
      int64_t s = c.plan.starts[i], m = c.plan.sizes[i];
      std::unordered_map<int, memory> args{
          {DNNL_ARG_SRC, memory(ActDesc(m, g.c, g.h, g.w, dt), Engine(), xp + s * xs)},
          {DNNL_ARG_WEIGHTS, memory(e.weights, Engine(), wp[i])},
          {DNNL_ARG_DST, memory(ActDesc(m, g.oc, g.oh, g.ow, dt), Engine(), yp + s * ys)}};
      if (g.has_bias)
        args.emplace(DNNL_ARG_BIAS, memory(memory::desc({g.oc}, dt, memory::format_tag::a),
                                           Engine(), b.untyped_data()));
      Execute(e, c.plan.nthr, std::move(args));
    });
  } catch (const dnnl::error& e) {
    return Fail(std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
  return err.empty() ? ffi::Error::Success() : Fail(err);
}

ffi::Error ConvBwdData(ffi::ThreadPool pool, ffi::AnyBuffer dy, ffi::AnyBuffer w,
                       ffi::Result<ffi::AnyBuffer> dx, ffi::Span<const int64_t> geom) {
  Geom g;
  std::string err;
  if (!ParseGeom(geom.begin(), geom.size(), &g, &err)) return Fail(err);
  int dtype;
  if (!DTypeOf(dy.element_type(), &dtype)) return Fail("unsupported element type");
  int64_t n = dy.dimensions().size() == 4 ? dy.dimensions()[0] : -1;
  if (!Is4d(dy, n, g.oh, g.ow, g.oc) || !Is4d(*dx, n, g.h, g.w, g.c) ||
      !Is4d(w, g.kh, g.kw, g.c / g.g, g.oc) || w.element_type() != dy.element_type() ||
      dx->element_type() != dy.element_type())
    return Fail("buffer shapes do not match the geometry");
  if (n == 0) return ffi::Error::Success();
  g_stats.calls++;
  try {
    auto dt = DnnlType(dtype);
    Chunked c = Prepare(kBwdData, dtype, n, g, 0.f, 0.f, PoolThreads(pool));
    auto user = UserWeightsDesc(g, dt);
    std::vector<OwnedBuffer> store(c.entries.size());
    std::vector<void*> wp(c.entries.size());
    for (size_t i = 0; i < c.entries.size(); ++i) {
      wp[i] = nullptr;
      for (size_t j = 0; j < i && !wp[i]; ++j)
        if (c.entries[j]->weights == c.entries[i]->weights) wp[i] = wp[j];
      if (!wp[i]) wp[i] = WeightsFor(*c.entries[i], user, w.untyped_data(), &store[i]);
    }
    char* dyp = static_cast<char*>(dy.untyped_data());
    char* dxp = static_cast<char*>(dx->untyped_data());
    size_t xs = g.h * g.w * g.c * Bytes(dtype), ys = g.oh * g.ow * g.oc * Bytes(dtype);
    err = ParallelFor(pool, kBwdData, c.plan.sizes.size(), [&](int64_t i) {
      const Entry& e = *c.entries[i];
      int64_t s = c.plan.starts[i], m = c.plan.sizes[i];
      Execute(e, c.plan.nthr,
              {{DNNL_ARG_DIFF_DST,
                memory(ActDesc(m, g.oc, g.oh, g.ow, dt), Engine(), dyp + s * ys)},
               {DNNL_ARG_WEIGHTS, memory(e.weights, Engine(), wp[i])},
               {DNNL_ARG_DIFF_SRC,
                memory(ActDesc(m, g.c, g.h, g.w, dt), Engine(), dxp + s * xs)}});
    });
  } catch (const dnnl::error& e) {
    return Fail(std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
  return err.empty() ? ffi::Error::Success() : Fail(err);
}

ffi::Error ConvBwdWeights(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer dy,
                          ffi::Result<ffi::AnyBuffer> dw, ffi::Result<ffi::AnyBuffer> db,
                          ffi::Span<const int64_t> geom) {
  Geom g;
  std::string err;
  if (!ParseGeom(geom.begin(), geom.size(), &g, &err)) return Fail(err);
  int dtype;
  if (!DTypeOf(x.element_type(), &dtype)) return Fail("unsupported element type");
  int64_t n = x.dimensions().size() == 4 ? x.dimensions()[0] : -1;
  if (!Is4d(x, n, g.h, g.w, g.c) || !Is4d(dy, n, g.oh, g.ow, g.oc) ||
      !Is4d(*dw, g.kh, g.kw, g.c / g.g, g.oc) || dy.element_type() != x.element_type() ||
      dw->element_type() != x.element_type() || db->element_type() != x.element_type() ||
      db->element_count() != g.oc)
    return Fail("buffer shapes do not match the geometry");
  const int64_t wsize = g.kh * g.kw * (g.c / g.g) * g.oc;
  auto f32 = memory::data_type::f32;
  auto user_f32 = UserWeightsDesc(g, f32);
  if (n == 0) {
    std::memset(dw->untyped_data(), 0, wsize * Bytes(dtype));
    std::memset(db->untyped_data(), 0, g.oc * Bytes(dtype));
    return ffi::Error::Success();
  }
  g_stats.calls++;
  try {
    auto dt = DnnlType(dtype);
    Chunked c = Prepare(kBwdWeights, dtype, n, g, 0.f, 0.f, PoolThreads(pool));
    const int64_t k = c.plan.sizes.size();
    // Per chunk: the kernel gradient in jaxcnn's layout and the bias gradient, float32.
    OwnedBuffer partial_buf;
    float* partial = static_cast<float*>(partial_buf.Get((wsize + g.oc) * k * sizeof(float)));
    char* xp = static_cast<char*>(x.untyped_data());
    char* dyp = static_cast<char*>(dy.untyped_data());
    size_t xs = g.h * g.w * g.c * Bytes(dtype), ys = g.oh * g.ow * g.oc * Bytes(dtype);
    err = ParallelFor(pool, kBwdWeights, k, [&](int64_t i) {
      const Entry& e = *c.entries[i];
      int64_t s = c.plan.starts[i], m = c.plan.sizes[i];
      float* pw = partial + i * (wsize + g.oc);
      float* pb = pw + wsize;
      bool direct = e.weights == user_f32;
      thread_local AlignedBuffer blocked;
      void* dst = direct ? static_cast<void*>(pw) : blocked.Get(e.weights.get_size());
      Execute(e, c.plan.nthr,
              {{DNNL_ARG_SRC, memory(ActDesc(m, g.c, g.h, g.w, dt), Engine(), xp + s * xs)},
               {DNNL_ARG_DIFF_DST,
                memory(ActDesc(m, g.oc, g.oh, g.ow, dt), Engine(), dyp + s * ys)},
               {DNNL_ARG_DIFF_WEIGHTS, memory(e.weights, Engine(), dst)},
               {DNNL_ARG_DIFF_BIAS,
                memory(memory::desc({g.oc}, f32, memory::format_tag::a), Engine(), pb)}});
      if (!direct) Reorder(e.weights, dst, user_f32, pw);
    });
    if (!err.empty()) return Fail(err);
    // Sum the chunks' partial gradients (chunk order: deterministic for a given thread count).
    const int64_t total = wsize + g.oc;
    for (int64_t i = 1; i < k; ++i) {
      const float* src = partial + i * total;
      for (int64_t j = 0; j < total; ++j) partial[j] += src[j];
    }
    if (dtype == kF32) {
      std::memcpy(dw->untyped_data(), partial, wsize * sizeof(float));
      std::memcpy(db->untyped_data(), partial + wsize, g.oc * sizeof(float));
    } else {
      auto* ow = static_cast<uint16_t*>(dw->untyped_data());
      auto* ob = static_cast<uint16_t*>(db->untyped_data());
      for (int64_t j = 0; j < wsize; ++j) ow[j] = ToBf16(partial[j]);
      for (int64_t j = 0; j < g.oc; ++j) ob[j] = ToBf16(partial[wsize + j]);
    }
  } catch (const dnnl::error& e) {
    return Fail(std::string("oneDNN: ") + e.what());
  } catch (const std::exception& e) {
    return Fail(e.what());
  }
  return ffi::Error::Success();
}

void CopyString(const std::string& s, char* out, int len) {
  if (len <= 0) return;
  std::strncpy(out, s.c_str(), len - 1);
  out[len - 1] = '\0';
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvFwd, ConvFwd,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("geom")
                                  .Attr<float>("alpha")
                                  .Attr<float>("beta"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvBwdData, ConvBwdData,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("geom"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxcnnOnednnConvBwdWeights, ConvBwdWeights,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const int64_t>>("geom"));

extern "C" {

// "<major>.<minor>.<patch> <isa>", e.g. "3.2.0 avx512_core_bf16".
void jaxcnn_onednn_version(char* out, int len) {
  const dnnl_version_t* v = dnnl_version();
  std::string isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: isa = "sse41"; break;
    case dnnl::cpu_isa::avx: isa = "avx"; break;
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx2_vnni_2: isa = "avx2_vnni_2"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_fp16: isa = "avx512_core_fp16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    case dnnl::cpu_isa::avx512_core_amx_fp16: isa = "avx512_core_amx_fp16"; break;
    default: isa = "unknown";
  }
  CopyString(std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                 std::to_string(v->patch) + " " + isa,
             out, len);
}

// Creates (and caches) the primitive of `kind` for `dtype` and batch `n` with `nthr` threads;
// writes its implementation name (e.g. "brg_conv_fwd:avx512_core") to `out` and returns 0, or
// writes the reason and returns 1 when oneDNN has no implementation for it.
int jaxcnn_onednn_query(int kind, int dtype, int64_t n,
                                                               const int64_t* geom, int ngeom,
                                                               float alpha, float beta,
                                                               int nthr, char* out, int len) {
  Geom g;
  std::string err;
  if (!ParseGeom(geom, ngeom, &g, &err)) {
    CopyString(err, out, len);
    return 1;
  }
  try {
    auto e = Get(kind, dtype, n, g, alpha, beta, nthr);
    CopyString(e->impl, out, len);
    return 0;
  } catch (const dnnl::error& e) {
    CopyString(std::string("oneDNN: ") + e.what(), out, len);
  } catch (const std::exception& e) {
    CopyString(e.what(), out, len);
  }
  return 1;
}

// Caps the threads of each call (0: XLA's pool size); returns the previous cap.
int jaxcnn_onednn_set_max_threads(int n) { return g_max_threads.exchange(n < 0 ? 0 : n); }

// 0: split the batch over XLA's pool, single-threaded oneDNN per chunk (the default); 1: one
// chunk per call with oneDNN's OpenMP threads. Returns the previous mode.
int jaxcnn_onednn_set_threading(int mode) { return g_threading.exchange(mode == 1 ? 1 : 0); }

// {primitives created, calls executed, chunks executed, primitives cached, thread CPU ns in the
// chunks of forward, input-gradient and kernel-gradient calls}.
void jaxcnn_onednn_stats(int64_t* out) {
  out[0] = g_stats.created.load();
  out[1] = g_stats.calls.load();
  out[2] = g_stats.chunks.load();
  {
    std::lock_guard<std::mutex> lock(g_cache_mu);
    out[3] = static_cast<int64_t>(g_cache.size());
  }
  for (int k = 0; k < 3; ++k) out[4 + k] = g_stats.cpu_ns[k].load();
}

}  // extern "C"
