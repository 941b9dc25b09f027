// Vectorised exp, sigmoid and tanh of float registers, one namespace per instruction set:
// avx512 (16 lanes), avx2 (8 lanes, FMA), portable (1 lane, plain C++). Each namespace is
// compiled for its own instruction set through `#pragma GCC target`, whatever flags the file
// is built with, so a build on any x86-64 machine carries all three; which one runs is chosen
// at run time (isa() below), and code that calls into a namespace must be compiled for the
// same instruction set (see microkernel.h), since its registers cross the calls.
//
// The algorithms are those of common.h's scalar exp_fast / tanh_fast, so every path gives the
// same numbers up to the rounding of fused multiply-adds:
//   exp(x)     = 2^n exp(r), x = n ln2 + r, |r| <= ln2/2, exp(r) by its degree-7 Taylor
//                polynomial; x clamped to [-87, 88] (the normal range of float).
//   sigmoid(x) = 1 / (1 + exp(-x)), one IEEE division.
//   tanh(x)    = an odd degree-11 polynomial for |x| < 0.625, 1 - 2 / (exp(2|x|) + 1) beyond.
// Error bounds, measured against float64 (tests/kernels/vmath_check.cpp, every float in
// [-20, 20] on a 2^-12 grid plus 10^6 random points in [-100, 100]; run by
// tests/kernels/test_vmath.py):
//   exp:     relative error <= 1.5e-7 (1.3 float ulp; measured 7.7e-8 to 9.9e-8) on [-87, 88];
//   sigmoid: absolute error <= 1e-7, relative <= 2e-7 for x >= -87 (measured 8.9e-8, 1.5e-7);
//   tanh:    absolute error <= 1e-7, relative <= 2e-7 (measured 7.3e-8, 1.3e-7).
// NaN gives NaN, +-inf the limits (exp(+inf) = e^88, exp(-inf) = e^-87: the clamp).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace rnnkit {
namespace vmath {

// Coefficients shared by every instruction set.
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;  // ln 2 = kLn2Hi + kLn2Lo; kLn2Hi has 12 bits
constexpr float kLn2Lo = 1.42860682030941723e-6f;
constexpr float kExpMin = -87.0f, kExpMax = 88.0f;
constexpr float kTanhSmall = 0.625f;
constexpr float kTanh[5] = {-5.70498872745e-3f, 2.06390887954e-2f, -5.37397155531e-2f,
                            1.33314422036e-1f, -3.33332819422e-1f};
constexpr float kTaylor[8] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24,
                              1.0f / 6,    0.5f,       1.0f,       1.0f};

enum class Isa { Portable = 0, Avx2 = 1, Avx512 = 2 };

// The widest instruction set this CPU (and its operating system, which must save the wider
// registers: GCC's check reads XCR0 too) supports. Callers may use a narrower one.
inline Isa detected_isa() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")) {
    return Isa::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::Avx2;
#endif
  return Isa::Portable;
}

inline const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "portable";
  }
}

// ---------------------------------------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")
namespace avx512 {

using V = __m512;
constexpr int kLanes = 16;

inline V set1(float a) { return _mm512_set1_ps(a); }
inline V zero() { return _mm512_setzero_ps(); }
inline V load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, V v) { _mm512_storeu_ps(p, v); }
inline __mmask16 tail_mask(int n) { return static_cast<__mmask16>((1u << n) - 1u); }
inline V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(tail_mask(n), p); }
inline void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, tail_mask(n), v); }
inline V add(V a, V b) { return _mm512_add_ps(a, b); }
inline V sub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }    // a b + c
inline V fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a b

inline V exp(V x) {
  // NaN stays NaN: min/max return their second operand when either is NaN
  x = _mm512_min_ps(set1(kExpMax), _mm512_max_ps(set1(kExpMin), x));
  const V n = _mm512_roundscale_ps(mul(x, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT |
                                                           _MM_FROUND_NO_EXC);
  const V r = fnma(n, set1(kLn2Lo), fnma(n, set1(kLn2Hi), x));
  V p = set1(kTaylor[0]);
  for (int i = 1; i < 8; ++i) p = fma(p, r, set1(kTaylor[i]));
  return _mm512_scalef_ps(p, n);  // p 2^n
}

inline V sigmoid(V x) {
  const V one = set1(1.0f);
  return _mm512_div_ps(one, add(one, exp(sub(zero(), x))));
}

inline V tanh(V x) {
  const V a = _mm512_abs_ps(x);
  const V z = mul(x, x);
  V p = set1(kTanh[0]);
  for (int i = 1; i < 5; ++i) p = fma(p, z, set1(kTanh[i]));
  const V small = fma(mul(x, z), p, x);
  const V one = set1(1.0f);
  const V big = sub(one, _mm512_div_ps(set1(2.0f), add(exp(add(a, a)), one)));
  // the sign of x onto big: big >= 0, so an OR of x's sign bit
  const V sign = _mm512_and_ps(x, _mm512_castsi512_ps(_mm512_set1_epi32(INT32_MIN)));
  const V signed_big = _mm512_or_ps(big, sign);
  const __mmask16 is_small = _mm512_cmp_ps_mask(a, set1(kTanhSmall), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(is_small, signed_big, small);
}

}  // namespace avx512
#pragma GCC pop_options

// ---------------------------------------------------------------------------------------------
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {

using V = __m256;
constexpr int kLanes = 8;

inline V set1(float a) { return _mm256_set1_ps(a); }
inline V zero() { return _mm256_setzero_ps(); }
inline V load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, V v) { _mm256_storeu_ps(p, v); }
inline __m256i tail_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline V load_n(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
inline void store_n(float* p, V v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
inline V add(V a, V b) { return _mm256_add_ps(a, b); }
inline V sub(V a, V b) { return _mm256_sub_ps(a, b); }
inline V mul(V a, V b) { return _mm256_mul_ps(a, b); }
inline V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
inline V fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }

inline V exp(V x) {
  x = _mm256_min_ps(set1(kExpMax), _mm256_max_ps(set1(kExpMin), x));  // NaN stays NaN
  const V n = _mm256_round_ps(mul(x, set1(kLog2e)), _MM_FROUND_TO_NEAREST_INT |
                                                      _MM_FROUND_NO_EXC);
  const V r = fnma(n, set1(kLn2Lo), fnma(n, set1(kLn2Hi), x));
  V p = set1(kTaylor[0]);
  for (int i = 1; i < 8; ++i) p = fma(p, r, set1(kTaylor[i]));
  const __m256i bits = _mm256_slli_epi32(
      _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return mul(p, _mm256_castsi256_ps(bits));
}

inline V sigmoid(V x) {
  const V one = set1(1.0f);
  return _mm256_div_ps(one, add(one, exp(sub(zero(), x))));
}

inline V tanh(V x) {
  const V sign_bit = _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN));
  const V a = _mm256_andnot_ps(sign_bit, x);
  const V z = mul(x, x);
  V p = set1(kTanh[0]);
  for (int i = 1; i < 5; ++i) p = fma(p, z, set1(kTanh[i]));
  const V small = fma(mul(x, z), p, x);
  const V one = set1(1.0f);
  const V big = sub(one, _mm256_div_ps(set1(2.0f), add(exp(add(a, a)), one)));
  const V signed_big = _mm256_or_ps(big, _mm256_and_ps(x, sign_bit));
  return _mm256_blendv_ps(signed_big, small, _mm256_cmp_ps(a, set1(kTanhSmall), _CMP_LT_OQ));
}

}  // namespace avx2
#pragma GCC pop_options

// ---------------------------------------------------------------------------------------------
// One lane of plain C++: the fallback for every other CPU, and the reference of the two above.
namespace portable {

using V = float;
constexpr int kLanes = 1;

inline V set1(float a) { return a; }
inline V zero() { return 0.0f; }
inline V load(const float* p) { return *p; }
inline void store(float* p, V v) { *p = v; }
inline V load_n(const float* p, int n) { return n > 0 ? *p : 0.0f; }
inline void store_n(float* p, V v, int n) {
  if (n > 0) *p = v;
}
inline V add(V a, V b) { return a + b; }
inline V sub(V a, V b) { return a - b; }
inline V mul(V a, V b) { return a * b; }
inline V fma(V a, V b, V c) { return a * b + c; }
inline V fnma(V a, V b, V c) { return c - a * b; }

inline V exp(V x) {
  x = x < kExpMin ? kExpMin : (x > kExpMax ? kExpMax : x);
  constexpr float kRound = 12582912.0f;  // 1.5 2^23: adding it rounds to an integer
  const float n = (x * kLog2e + kRound) - kRound;
  const float r = (x - n * kLn2Hi) - n * kLn2Lo;
  float p = kTaylor[0];
  for (int i = 1; i < 8; ++i) p = p * r + kTaylor[i];
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline V sigmoid(V x) { return 1.0f / (1.0f + exp(-x)); }

inline V tanh(V x) {
  const float a = x < 0 ? -x : x;
  const float z = x * x;
  float p = kTanh[0];
  for (int i = 1; i < 5; ++i) p = p * z + kTanh[i];
  const float small = x + x * z * p;
  const float big = 1.0f - 2.0f / (exp(2.0f * a) + 1.0f);
  return a < kTanhSmall ? small : (x < 0 ? -big : big);
}

}  // namespace portable

}  // namespace vmath
}  // namespace rnnkit
