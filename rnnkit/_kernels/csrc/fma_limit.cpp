// The machine's arithmetic limit: how many float32 fused multiply-adds per second the CPU's
// vector units complete when nothing but registers is involved. The benchmark reports every
// kernel's GFLOP/s as a share of it (rnnkit/bench/speed.py): a figure against torch.mm would
// only say how close a kernel comes to MKL, not to the machine.
//
// The loop keeps kChains independent accumulator registers, each updated by acc = acc * m + a
// per iteration: an FMA's latency is 4 cycles and a core issues up to 2 per cycle, so at least
// 8 chains must be in flight; 24 (AVX-512, 32 registers) and 12 (AVX2, 16) leave a margin and
// still fit the register file with the two operands, so no load or store is in the loop. With
// 0 < m < 1 every chain converges to a / (1 - m): no overflow, no denormals. m and a come from
// the caller at run time, so the compiler cannot fold the loop away; the chains' sum is
// returned for the same reason. Each instruction set's loop is compiled for it (#pragma GCC
// target, as in vmath.h), so a build on any x86-64 machine carries both and the CPU's support
// (vmath::detected_isa) decides which may run.
//
// Operators (no tensors; CPU-only by nature):
//   rnnkit::fma_vector_bits() -> int[]          the widths this CPU runs: [512, 256], [256], []
//   rnnkit::fma_gflops(int bits, int threads) -> float
//       GFLOP/s (2 per lane per FMA) of `threads` threads running the loop at once, the best
//       of a few runs of about 20 ms each: a limit is what the machine can reach.
#include <c10/util/Exception.h>  // TORCH_CHECK (ops.cpp registers the operators)

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "vmath.h"

namespace rnnkit {
namespace fma_limit {

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")
namespace avx512 {
constexpr int kChains = 24, kLanes = 16;
__attribute__((noinline)) float chains(int64_t iterations, float m, float a) {
  __m512 acc[kChains];
  const __m512 vm = _mm512_set1_ps(m), va = _mm512_set1_ps(a);
#pragma GCC unroll 24
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(1.0f + j);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], vm, va);
  }
  __m512 sum = acc[0];
#pragma GCC unroll 24
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  return _mm512_reduce_add_ps(sum);
}
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
constexpr int kChains = 12, kLanes = 8;
__attribute__((noinline)) float chains(int64_t iterations, float m, float a) {
  __m256 acc[kChains];
  const __m256 vm = _mm256_set1_ps(m), va = _mm256_set1_ps(a);
#pragma GCC unroll 12
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(1.0f + j);
  for (int64_t i = 0; i < iterations; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], vm, va);
  }
  __m256 sum = acc[0];
#pragma GCC unroll 12
  for (int j = 1; j < kChains; ++j) sum = _mm256_add_ps(sum, acc[j]);
  alignas(32) float lanes[kLanes];
  _mm256_store_ps(lanes, sum);
  float total = 0;
  for (float v : lanes) total += v;
  return total;
}
}  // namespace avx2
#pragma GCC pop_options

namespace {

using Loop = float (*)(int64_t, float, float);

struct Width {
  Loop loop;
  int64_t flops_per_iteration;  // chains x lanes x 2
};

Width width_for(int64_t bits) {
  const vmath::Isa isa = vmath::detected_isa();
  TORCH_CHECK(bits == 512 || bits == 256, "fma_gflops: bits must be 512 or 256, got ", bits);
  TORCH_CHECK(bits != 512 || isa == vmath::Isa::Avx512,
              "fma_gflops: this CPU has no 512-bit FMA (AVX-512F/DQ/VL/BW)");
  TORCH_CHECK(isa != vmath::Isa::Portable, "fma_gflops: this CPU has no 256-bit FMA (AVX2+FMA)");
  if (bits == 512) return {&avx512::chains, 2 * avx512::kChains * avx512::kLanes};
  return {&avx2::chains, 2 * avx2::kChains * avx2::kLanes};
}

using Clock = std::chrono::steady_clock;

// Seconds for `threads` threads (this one among them) to run `iterations` each, started
// together: from the release of the start flag to the last thread's end.
double timed_run(Loop loop, int64_t iterations, int64_t threads, float m, float a) {
  std::atomic<int64_t> arrived{0};
  std::atomic<bool> go{false};
  std::vector<float> sums(threads);
  auto body = [&](int64_t id) {
    arrived.fetch_add(1);
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    sums[id] = loop(iterations, m, a);
  };
  std::vector<std::thread> helpers;
  for (int64_t id = 1; id < threads; ++id) helpers.emplace_back(body, id);
  while (arrived.load() < threads - 1) std::this_thread::yield();
  const auto start = Clock::now();
  go.store(true, std::memory_order_release);
  sums[0] = loop(iterations, m, a);
  for (std::thread& t : helpers) t.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  // The sums are finite by construction; the check keeps them observable.
  TORCH_CHECK(std::all_of(sums.begin(), sums.end(), [](float s) { return s == s; }),
              "fma_gflops: the FMA chains diverged");
  return seconds;
}

}  // namespace

double fma_gflops(int64_t bits, int64_t threads) {
  TORCH_CHECK(threads >= 1 && threads <= 4096, "fma_gflops: threads must be 1 to 4096, got ",
              threads);
  const Width width = width_for(bits);
  const float m = 0.999f, a = 1e-3f;
  // Calibrate on one thread: iterations for about 20 ms per run.
  constexpr double kRunSeconds = 0.02;
  int64_t iterations = 1 << 14;
  for (;;) {
    const double s = timed_run(width.loop, iterations, 1, m, a);
    if (s >= kRunSeconds / 4 || iterations >= (int64_t(1) << 34)) {
      iterations = std::max<int64_t>(1, static_cast<int64_t>(iterations * kRunSeconds / s));
      break;
    }
    iterations *= 4;
  }
  constexpr int kRuns = 5;
  double best = 0;
  for (int r = 0; r < kRuns; ++r) {
    const double s = timed_run(width.loop, iterations, threads, m, a);
    best = std::max(best, double(width.flops_per_iteration) * iterations * threads / s / 1e9);
  }
  return best;
}

std::vector<int64_t> fma_vector_bits() {
  switch (vmath::detected_isa()) {
    case vmath::Isa::Avx512: return {512, 256};
    case vmath::Isa::Avx2: return {256};
    default: return {};
  }
}

}  // namespace fma_limit
}  // namespace rnnkit
