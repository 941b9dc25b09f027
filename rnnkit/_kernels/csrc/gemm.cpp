// Row-major matrix products on the BLAS that torch links, called without the dispatcher.
//
// A row-major (m, n) matrix is the column-major (n, m) matrix of the same memory, so
// C = op(A) op(B) in row-major is C^T = op(B)^T op(A)^T in column-major: swap the operands.
#include <cstdlib>
#include <type_traits>
#include <vector>

#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>

#include "common.h"
#include "microkernel.h"

extern "C" {
// The Fortran BLAS interface (32-bit integers, as torch's own CPUBlas declares it). Weak: when
// torch's BLAS does not export them the pointers are null and at::addmm_out is used instead.
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) __attribute__((weak));
void dgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const double* alpha, const double* a, const int* lda, const double* b,
            const int* ldb, const double* beta, double* c, const int* ldc) __attribute__((weak));
// MKL's per-thread thread count (returns the previous setting; 0 means "the global one").
int MKL_Set_Num_Threads_Local(int threads) __attribute__((weak));
// MKL's packed products (CBLAS enums passed as their int values, 32-bit integers).
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc)
    __attribute__((weak));
}

namespace rnnkit {
namespace {

// A small product split across threads waits at a barrier for a thread that a busy machine
// may not schedule for milliseconds (measured: a 24x10x10 product took 30 ms on a loaded
// 2-core machine, 5 us on one thread). Below ~4 MFLOP one thread is as fast anyway.
class SingleThreadedIfSmall {
 public:
  SingleThreadedIfSmall(int64_t m, int64_t n, int64_t k)
      : single_(MKL_Set_Num_Threads_Local != nullptr && 2.0 * m * n * k < kThreadedFlops),
        previous_(single_ ? MKL_Set_Num_Threads_Local(1) : 0) {}
  ~SingleThreadedIfSmall() {
    if (single_) MKL_Set_Num_Threads_Local(previous_);
  }

 private:
  static constexpr double kThreadedFlops = 4e6;
  bool single_;
  int previous_;
};

template <typename T>
void gemm_aten(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  // A view of a row-major (rows, cols) block with leading dimension ld; op T is its transpose.
  auto view = [&](const T* p, Op op, int64_t rows, int64_t cols, int64_t ld) {
    const int64_t r = op == Op::N ? rows : cols, c = op == Op::N ? cols : rows;
    Tensor t = at::from_blob(const_cast<T*>(p), {r, c}, {ld, 1}, options);
    return op == Op::N ? t : t.t();
  };
  Tensor out = at::from_blob(c, {m, n}, {ldc, 1}, options);
  const Tensor lhs = view(a, op_a, m, k, lda), rhs = view(b, op_b, k, n, ldb);
  if (beta == T(0)) {  // BLAS semantics: C is not read
    at::mm_out(out, lhs, rhs);
    if (alpha != T(1)) out.mul_(alpha);
  } else {
    out.addmm_(lhs, rhs, beta, alpha);
  }
}

template <typename T, typename Blas>
void gemm_blas(Blas blas, Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, T alpha,
               const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // BLAS would scale C by beta; make that explicit (beta is 0 or 1 here)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  const SingleThreadedIfSmall guard(m, n, k);
  const char ta = op_a == Op::N ? 'N' : 'T', tb = op_b == Op::N ? 'N' : 'T';
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  const int ilda = static_cast<int>(lda), ildb = static_cast<int>(ldb);
  const int ildc = static_cast<int>(ldc);
  blas(&tb, &ta, &in, &im, &ik, &alpha, b, &ildb, a, &ilda, &beta, c, &ildc);
}

bool fits_int(int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb, int64_t ldc) {
  constexpr int64_t kMax = 0x7fffffff;
  return m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax;
}

// The larger float32 products on the AVX-512 micro-kernel (microkernel.h) instead of the BLAS:
// on the AVX-512 machine MKL ran the backward passes' products (d_gates @ W_ih, d_gates^T @ x,
// d_gates^T @ h) at about 190 GFLOP/s whatever the layout, the micro-kernel's about twice
// that. Taken outside the threads' loops only (the per-step products there are the threads'
// own), for products of at least 4 MFLOP, alpha 1, beta 0 or 1; false when not taken.
bool micro_gemm(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const double flops = 2.0 * m * n * k;
  if (micro::fused_isa() != micro::Isa::Avx512 || at::in_parallel_region() || flops < 4e6 ||
      alpha != 1.0f || (beta != 0.0f && beta != 1.0f) || op_b != Op::N) {
    return false;
  }
  const micro::Isa isa = micro::Isa::Avx512;
  const int64_t block = 4 * micro::lanes(isa);  // the columns of one panel group
  if (op_a == Op::N) {  // C (m, n) = A (m, k) @ B (k, n): B packed (a weight: small)
    const micro::Panel panel =
        micro::unit_panel(isa, k, n, [=](int64_t kk, int64_t j) { return b[kk * ldb + j]; });
    over_batch(m, flops, [&](int64_t r0, int64_t r1) {
      micro::product(isa, panel, a + r0 * lda, lda, k, r1 - r0, nullptr, c + r0 * ldc, ldc, n,
                     beta != 0.0f);
    });
    return true;
  }
  // C (m, n) = A^T B with A (k, m), B (k, n): the weight gradients, a sum over the k = T B
  // rows. As C^T (n, m) = B^T A: the kernel reads B^T's rows as B's columns and A's column
  // groups in place (A, the gates' gradients, is the wide factor), in blocks of kDepth rows
  // so that a block's column group stays in cache while the kernel walks B^T's rows.
  if (m % block != 0) return false;
  std::vector<float> ct(static_cast<size_t>(n * m));
  constexpr int64_t kDepth = 256;
  over_batch(n, flops, [&](int64_t r0, int64_t r1) {
    for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
      micro::product_tn(isa, b + k0 * ldb + r0, ldb, a + k0 * lda, lda,
                        std::min(kDepth, k - k0), r1 - r0, ct.data() + r0 * m, m, m, k0 > 0);
    }
  });
  for (int64_t i = 0; i < m; ++i) {
    float* ci = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) ci[j] = (beta != 0.0f ? ci[j] : 0.0f) + ct[j * m + i];
  }
  return true;
}

// The BLAS's product (or ATen's where the BLAS lacks the symbol): what gemm() runs when the
// micro-kernel does not take the call, and what the per-step products of PackedRight fall
// back to (a step's product must not pack its right factor again on every step).
void library_gemm(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                  int64_t ldc) {
  if (sgemm_ != nullptr && fits_int(m, n, k, lda, ldb, ldc)) {
    gemm_blas(sgemm_, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    gemm_aten(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

void library_gemm(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, double alpha,
                  const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                  double* c, int64_t ldc) {
  if (dgemm_ != nullptr && fits_int(m, n, k, lda, ldb, ldc)) {
    gemm_blas(dgemm_, op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    gemm_aten(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

}  // namespace

void gemm(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (micro_gemm(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
  library_gemm(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  library_gemm(op_a, op_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

namespace {
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112, kPacked = 151, kBMatrix = 162;

bool can_pack(int64_t m, int64_t n, int64_t k, int64_t ldb) {
  return cblas_sgemm_pack_get_size != nullptr && cblas_sgemm_pack != nullptr &&
         cblas_sgemm_compute != nullptr && m > 0 && n > 0 && k > 0 && fits_int(m, n, k, ldb, n, n);
}
}  // namespace

template <typename T>
PackedRight<T>::PackedRight(Op op_b, int64_t m, int64_t n, int64_t k, const T* b, int64_t ldb)
    : op_b_(op_b), m_(m), n_(n), k_(k), ldb_(ldb), b_(b) {
  if constexpr (std::is_same_v<T, float>) {
    if (!can_pack(m, n, k, ldb)) return;
    const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
    const size_t bytes = cblas_sgemm_pack_get_size(kBMatrix, im, in, ik);
    packed_ = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (packed_ == nullptr) return;  // out of memory for the copy: multiply unpacked
    cblas_sgemm_pack(kRowMajor, kBMatrix, op_b == Op::N ? kNoTrans : kTrans, im, in, ik, 1.0f, b,
                     static_cast<int>(ldb), static_cast<float*>(packed_));
  }
}

template <typename T>
PackedRight<T>::~PackedRight() {
  std::free(packed_);
}

template <typename T>
void PackedRight<T>::multiply(const T* a, int64_t lda, T beta, T* c, int64_t ldc) const {
  if constexpr (std::is_same_v<T, float>) {
    if (packed_ != nullptr && fits_int(m_, n_, k_, lda, ldb_, ldc)) {
      const SingleThreadedIfSmall guard(m_, n_, k_);
      cblas_sgemm_compute(kRowMajor, kNoTrans, kPacked, static_cast<int>(m_),
                          static_cast<int>(n_), static_cast<int>(k_), a, static_cast<int>(lda),
                          static_cast<const float*>(packed_), static_cast<int>(n_), beta, c,
                          static_cast<int>(ldc));
      return;
    }
  }
  library_gemm(Op::N, op_b_, m_, n_, k_, T(1), a, lda, b_, ldb_, beta, c, ldc);
}

template class PackedRight<float>;
template class PackedRight<double>;

}  // namespace rnnkit
