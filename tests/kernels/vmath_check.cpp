// Error of csrc/vmath.h's exp, sigmoid and tanh against float64, on every instruction set this
// CPU runs: every float in [-20, 20] on a 2^-12 grid, then 10^6 random points in [-100, 100].
// Prints one line per ISA and function: "isa function max_abs max_rel" (relative error over
// |reference| >= 1e-30, i.e. wherever float can represent the value). Compiled and run by
// test_vmath.py; standalone: g++ -O2 -I rnnkit/_kernels/csrc vmath_check.cpp && ./a.out
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "vmath.h"

using namespace rnnkit;

namespace {

enum Fn { kExp, kSigmoid, kTanh };
const char* kNames[] = {"exp", "sigmoid", "tanh"};

double reference(Fn f, double x) {
  if (f == kExp) return std::exp(x);
  if (f == kSigmoid) return 1.0 / (1.0 + std::exp(-x));
  return std::tanh(x);
}

// y[i] = f(x[i]) on one ISA; n a multiple of 16 plus a tail handled with load_n/store_n.
#define APPLY_BODY                                                      \
  int i = 0;                                                            \
  for (; i + kLanes <= n; i += kLanes) {                                \
    const V v = load(x + i);                                            \
    store(y + i, f == kExp ? exp(v) : f == kSigmoid ? sigmoid(v) : tanh(v)); \
  }                                                                     \
  if (i < n) {                                                          \
    const V v = load_n(x + i, n - i);                                   \
    store_n(y + i, f == kExp ? exp(v) : f == kSigmoid ? sigmoid(v) : tanh(v), n - i); \
  }

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")
void apply_avx512(Fn f, const float* x, float* y, int n) {
  using namespace vmath::avx512;
  APPLY_BODY
}
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx2,fma")
void apply_avx2(Fn f, const float* x, float* y, int n) {
  using namespace vmath::avx2;
  APPLY_BODY
}
#pragma GCC pop_options
void apply_portable(Fn f, const float* x, float* y, int n) {
  using namespace vmath::portable;
  APPLY_BODY
}

}  // namespace

int main() {
  std::vector<float> xs;
  for (int k = -20 * 4096; k <= 20 * 4096; ++k) xs.push_back(k / 4096.0f);
  std::mt19937 rng(0);
  std::uniform_real_distribution<float> wide(-100.0f, 100.0f);
  for (int k = 0; k < 1000000; ++k) xs.push_back(wide(rng));
  xs.push_back(1e-30f);
  xs.push_back(-1e-30f);
  xs.push_back(0.0f);
  const int n = static_cast<int>(xs.size()) - 3;  // an odd count: the masked tails run
  std::vector<float> ys(xs.size());
  const vmath::Isa best = vmath::detected_isa();
  for (int isa = 0; isa <= static_cast<int>(best); ++isa) {
    for (Fn f : {kExp, kSigmoid, kTanh}) {
      if (isa == 2) apply_avx512(f, xs.data(), ys.data(), n);
      else if (isa == 1) apply_avx2(f, xs.data(), ys.data(), n);
      else apply_portable(f, xs.data(), ys.data(), n);
      double max_abs = 0, max_rel = 0;
      for (int i = 0; i < n; ++i) {
        const double x = xs[i];
        if (f == kExp && (x < vmath::kExpMin || x > vmath::kExpMax)) continue;
        if (f == kSigmoid && x < vmath::kExpMin) continue;
        const double want = reference(f, x), got = ys[i];
        const double err = std::fabs(got - want);
        if (!(err <= max_abs)) max_abs = err;  // also catches NaN
        if (std::fabs(want) >= 1e-30 && !(err / std::fabs(want) <= max_rel)) {
          max_rel = err / std::fabs(want);
        }
      }
      // NaN must stay NaN; +-inf must give the function's limits.
      const float special_x[] = {NAN, INFINITY, -INFINITY};
      float special_y[3];
      if (isa == 2) apply_avx512(f, special_x, special_y, 3);
      else if (isa == 1) apply_avx2(f, special_x, special_y, 3);
      else apply_portable(f, special_x, special_y, 3);
      const double limits[3][2] = {{1e38, 1e-37}, {1.0, 1e-37}, {1.0, -1.0}};  // f(inf), f(-inf)
      if (!std::isnan(special_y[0])) max_abs = NAN;
      if (f == kExp ? special_y[1] < limits[0][0] || special_y[2] > limits[0][1]
                    : std::fabs(special_y[1] - limits[f][0]) > 1e-7 ||
                          std::fabs(special_y[2] - (f == kTanh ? -1.0 : 0.0)) > 1e-7) {
        max_abs = NAN;
      }
      std::printf("%s %s %.3e %.3e\n", vmath::isa_name(static_cast<vmath::Isa>(isa)),
                  kNames[f], max_abs, max_rel);
    }
  }
  return 0;
}
