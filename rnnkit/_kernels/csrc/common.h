// Shared pieces of rnnkit's compiled recurrences: activations that vectorise, a row-major
// matrix product that calls the BLAS torch ships with, and the batch split across threads.
//
// Every recurrence here has the same shape: a time loop whose step is one small matrix product
// (state times the recurrent weights) and one loop over the B*H elements of the step. Batch
// rows never talk to each other, so the batch is split into one block per thread for the whole
// time loop (over_batch): no synchronisation per step, and each thread's matrix products run
// single-threaded.
#pragma once

// Only the headers the loops use (Tensor's methods, the type dispatch, the thread pool and the
// handful of ATen functions below), not <ATen/ATen.h> or <torch/extension.h>: the first build
// compiles each translation unit in a few seconds instead of tens.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>

#include <algorithm>
#include <array>
#include <atomic>

#include <cmath>
#include <cstdint>
#include <exception>
#include <vector>

#include "threads.h"

namespace rnnkit {

using at::Tensor;

// ---------------------------------------------------------------------------------------------
// Activations. The float versions are branch-free polynomials the compiler turns into SIMD code
// (std::tanh / std::exp stay scalar); they are within a few ulp of torch's. Double keeps the
// C library's functions: float64 is for checking, where the last ulp matters more than speed.

// exp(x) for float: x = n ln2 + r with |r| <= ln2/2, exp(r) by its degree-7 Taylor polynomial
// (truncation error below 1e-8 relative), 2^n written into the exponent bits. n is rounded
// with the 1.5 * 2^23 trick, which the compiler keeps (no fast-math) and vectorises.
static inline float exp_fast(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  constexpr float kRound = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = (x - n * 0.693145751953125f) - n * 1.42860682030941723e-6f;
  float p = 1.0f / 5040;
  p = p * r + 1.0f / 720;
  p = p * r + 1.0f / 120;
  p = p * r + 1.0f / 24;
  p = p * r + 1.0f / 6;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

static inline float sigmoid(float x) { return 1.0f / (1.0f + exp_fast(-x)); }
static inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// tanh for float: an odd polynomial near zero (where 1 - 2/(e^2x + 1) would cancel), the
// exponential form elsewhere; both are computed and one is selected, which keeps it branch-free.
static inline float tanh_fast(float x) {
  const float a = std::fabs(x);
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = x + x * z * p;
  const float big = 1.0f - 2.0f / (exp_fast(2.0f * a) + 1.0f);
  const float signed_big = x < 0 ? -big : big;
  return a < 0.625f ? small : signed_big;
}

static inline float tanh_(float x) { return tanh_fast(x); }
static inline double tanh_(double x) { return std::tanh(x); }

// ---------------------------------------------------------------------------------------------
// C = alpha * op(A) @ op(B) + beta * C, all row-major with leading dimensions. Calls the
// Fortran BLAS symbols of the library torch links (MKL on x86 wheels) directly, skipping the
// dispatcher; if the symbol is missing it falls back to at::addmm_out on views.

enum class Op { N, T };

void gemm(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(Op op_a, Op op_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

// The right factor of a product repeated with many left factors: the recurrent weights, used
// once per time step. Where the BLAS can (MKL's cblas_sgemm_pack, float only), op(B) is packed
// into its internal layout once, instead of on every call (measured: the repacking was ~15%
// of a small LSTM step's product); elsewhere multiply() is gemm() above. One per thread: the
// packed layout depends on m, which is that thread's share of the batch.
template <typename T>
class PackedRight {
 public:
  PackedRight(Op op_b, int64_t m, int64_t n, int64_t k, const T* b, int64_t ldb);
  PackedRight(const PackedRight&) = delete;
  PackedRight& operator=(const PackedRight&) = delete;
  ~PackedRight();

  // C (m, n) = A (m, k) @ op(B) + beta * C, row-major with leading dimensions.
  void multiply(const T* a, int64_t lda, T beta, T* c, int64_t ldc) const;

 private:
  Op op_b_;
  int64_t m_, n_, k_, ldb_;
  const T* b_;
  void* packed_ = nullptr;  // the packed copy of op(B), or null when gemm() is used
};

// ---------------------------------------------------------------------------------------------
// Run f(begin, end) over [0, batch) in blocks, one per torch thread, when the work is big
// enough to pay for waking a second thread, else in one call on this thread. The blocks depend
// only on torch's thread count, so a row's arithmetic is the same however many threads run
// them: threads.h's policy (fewer threads on a busy machine, within the affinity mask and the
// cgroup quota) decides that, and the threads take the blocks in turn, so a thread that starts
// late finds its block done by another. No synchronisation per step.
template <typename F>
void over_batch(int64_t batch, double flops, const F& f) {
  constexpr double kParallelFlops = 2e6;  // below this, a thread wake-up costs more than it saves
  const int64_t split = at::get_num_threads();
  if (split <= 1 || batch < 2 || flops < kParallelFlops || at::in_parallel_region()) {
    f(int64_t{0}, batch);
    return;
  }
  const int64_t blocks = std::min(split, batch);
  const int64_t grain = (batch + blocks - 1) / blocks;
  const int64_t threads = std::min(blocks, threads::threads_now());
  if (threads <= 1) {
    const threads::AsTeamThread as_team_thread;
    for (int64_t b0 = 0; b0 < batch; b0 += grain) f(b0, std::min(batch, b0 + grain));
    return;
  }
  std::atomic<int64_t> next{0};
  std::atomic_flag failed = ATOMIC_FLAG_INIT;
  std::exception_ptr error;  // the first exception of a block, rethrown here (as at::parallel_for)
#pragma omp parallel num_threads(threads)
  {
    for (int64_t block = next++; block < blocks; block = next++) {
      const int64_t b0 = block * grain;
      if (b0 >= batch) continue;
      try {
        f(b0, std::min(batch, b0 + grain));
      } catch (...) {
        if (!failed.test_and_set()) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

// Pointer to row `row` of time step `t` in a (T, B, width) contiguous buffer.
template <typename T>
inline T* at_step(T* base, int64_t t, int64_t batch, int64_t row, int64_t width) {
  return base + (t * batch + row) * width;
}

// A tensor that may be undefined (Python None), as contiguous or undefined.
inline Tensor contiguous_or_empty(const Tensor& t) { return t.defined() ? t.contiguous() : t; }

// The placeholder a pass returns for an output nobody asked for (a gradient outside
// output_mask, the saved buffers of an inference pass): the operator schemas return tensors,
// and the fake kernels give these the same (0,) shape.
inline Tensor unused(const Tensor& like) { return at::empty({0}, like.options()); }

// A (T, B, H) tensor read in place whatever its strides (the output gradient of out.sum() is
// one broadcast scalar): row(t, b) points into it when its rows are contiguous, else it gathers
// the row into `scratch` (H elements). Saves the (T, B, H) copy .contiguous() would make.
template <typename T>
struct StridedRows {
  const T* data;
  int64_t step_stride, batch_stride, stride;
  explicit StridedRows(const Tensor& t)
      : data(t.data_ptr<T>()), step_stride(t.stride(0)), batch_stride(t.stride(1)),
        stride(t.stride(2)) {}
  const T* row(int64_t t, int64_t b, T* scratch, int64_t width) const {
    const T* first = data + t * step_stride + b * batch_stride;
    if (stride == 1) return first;
    for (int64_t j = 0; j < width; ++j) scratch[j] = first[j * stride];
    return scratch;
  }
};

// The incoming gradient of the outputs, contiguous, and whether the backward pass owns it: true
// when it was copied here from a strided gradient (the broadcast ones of out.sum(), for one),
// so nothing else can see it and it may be overwritten once read, saving a (T, B, H) buffer.
struct OutputGrad {
  Tensor grad;
  bool owned;
};
inline OutputGrad output_grad(const Tensor& incoming) {
  Tensor grad = incoming.contiguous();
  const bool owned = !grad.is_same(incoming);
  return {std::move(grad), owned};
}

}  // namespace rnnkit

// ---------------------------------------------------------------------------------------------
// Pieces every cell's forward and backward pass shares (defined in shared.cpp).
namespace rnnkit {

// (T*B, G) = x (T*B, D) @ w^T (D, G) + bias + bias2: the input projection of all steps at
// once. Either bias may be undefined.
Tensor project_inputs(const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& bias2 = Tensor());

// bias + bias2 as one row of n values (either may be undefined; empty when both are).
std::vector<float> summed_bias(const Tensor& bias, const Tensor& bias2, int64_t n);

// out (rows, G) = x (rows, D) @ w^T + bias + bias2 on the library's product (float32 rows).
void library_projection(float* out, const float* x, int64_t rows, int64_t features,
                        const Tensor& w, const Tensor& bias, const Tensor& bias2);

// How many steps a chunked pass projects at a time (see in_chunks): enough for the chunk's
// projections (batch x width floats per step) to fill about 1 MiB, at least 4 steps; `steps`
// itself when the whole sequence fits. Measured on the 2-core AVX-512 machine (2 MiB of L2
// per core): 0.25 to 4 MiB all ran the bench's medium, long and large GRU/LSTM inference
// 1.3-1.8x faster than projecting every step first, within noise of each other.
int64_t chunk_steps(int64_t steps, int64_t batch, int64_t width);

// dW (G, H) = sum_t d_t^T h_{t-1}: the recurrent weight gradient as two matrix products, with
// h_{t-1} taken from the saved states (T, B, H) shifted one step, and h0 for the first step.
// d is (T, B, G) with row stride ld (a column block of a wider buffer is allowed).
// With zero_mask (the mask of a zero-padded pass, else undefined) a step that follows masked
// steps read a zeroed row there: its term d_t^T (held state) is added separately.
Tensor recurrent_weight_grad(const Tensor& d, int64_t ld_offset, int64_t gates_width,
                             const Tensor& states, const Tensor& h0, bool reverse,
                             const Tensor& zero_mask = Tensor());

// The weight and bias gradients of a dense float32 pass from its per-step gate gradients d
// (T, B, n) (row stride ld: a column block of a wider buffer is allowed), in one pass over d
// in blocks of rows, each block read from memory once for all of
//     dw_ih (n, D)         = sum_t d_t^T x_t            (x (T, B, D) contiguous)
//     dw_hh (hh_cols, S)   = sum_t d_t^T h_{t-1}        over d's first hh_cols columns
//     db (n)               = the sum of d's rows
// (each null when not asked for); h_{t-1} is states (T, B, S) shifted one step, h0 (B, S) for
// the first processed step. The columns of d are split across the threads (over_batch), so an
// output element is summed by one thread, in the same order whatever the thread count.
// Returns false, writing nothing, where it does not run (no AVX-512: the micro-kernel's
// products are the reason for it); the callers then use matmul, recurrent_weight_grad and
// threads::sum_rows, as they do for float64 and zero-padded masked passes.
bool weight_grads(const float* d, int64_t ld, int64_t n, int64_t steps, int64_t batch,
                  const float* x, int64_t features, float* dw_ih, const float* states,
                  const float* h0, int64_t state, bool reverse, int64_t hh_cols, float* dw_hh,
                  float* db);

// The state step t started from: h0 for the first processed step, else the neighbouring state.
template <typename T>
inline const T* previous_state(const T* states, const T* h0, int64_t t, int64_t steps,
                               int64_t batch, int64_t row, int64_t hidden, bool reverse) {
  const bool first = reverse ? t == steps - 1 : t == 0;
  if (first) return h0 + row * hidden;
  return at_step(states, reverse ? t + 1 : t - 1, batch, row, hidden);
}

// Zero padding (torch.nn's outputs past a sequence's end): with `zero` set, the outputs at
// masked steps are zero while the state is still held. The forward loops keep a held state in
// its output row until the next step has read it and then zero that row (zero_rows); the
// backward pass finds the held states again from the mask (held_sources).

// Set the rows of o (rows, width) whose keep flag is false to zero.
template <typename T>
inline void zero_rows(T* o, const bool* keep, int64_t rows, int64_t width) {
  for (int64_t i = 0; i < rows; ++i) {
    if (!keep[i]) std::fill(o + i * width, o + (i + 1) * width, T(0));
  }
}

// For every (t, b) of a (T, B) mask: the step whose output row holds the state step t starts
// from, in processing order (the last kept step before t), or -1 for the initial state.
std::vector<int64_t> held_sources(const bool* mask, int64_t steps, int64_t batch, bool reverse);

// The state step t of row `row` started from, given held_sources: an output row or h0's row.
template <typename T>
inline const T* held_state(const std::vector<int64_t>& sources, const T* states, const T* h0,
                           int64_t t, int64_t batch, int64_t row, int64_t hidden) {
  const int64_t from = sources[t * batch + row];
  return from < 0 ? h0 + row * hidden : at_step(states, from, batch, row, hidden);
}

// op(a) @ op(b) for contiguous 2-D tensors through gemm() above (not the dispatcher, whose
// threading of small products is slow on a busy machine).
Tensor matmul(const Tensor& a, Op op_a, const Tensor& b, Op op_b);

// The state after the last processed step (a copy), or h0 when there are no steps. With
// zero_mask (a zero-padded pass) each row's state is taken from its last kept step.
Tensor last_state(const Tensor& out, const Tensor& h0, bool reverse,
                  const Tensor& zero_mask = Tensor());

// The (T, B) bool mask of the first lengths[b] steps of each sequence, with the smallest and
// largest length (for the caller's range check): one pass instead of five small ATen calls.
std::tuple<Tensor, int64_t, int64_t> prefix_mask(const Tensor& lengths, int64_t steps);

// out (T, B, F) set to zero in place at the steps where mask (T, B) is False: torch.nn's padding
// past each sequence's end, without a multiply over every element.
void zero_masked_(const Tensor& out, const Tensor& mask);

// Either the bias as a contiguous tensor or zeros of `size`, so loops never branch on it.
Tensor bias_or_zeros(const Tensor& bias, int64_t size, const Tensor& like);

// An error unless every tensor is a CPU tensor of x's dtype (float32 or float64) and of the
// shape its role requires: x (T, B, D), each state (B, H), w_ih (G*H, D), w_hh (G*H, H),
// biases (G*H), mask (T, B) bool. The loops index raw memory, so this is not optional.
// With an output projection w_hr (P, H) (the LSTM's proj_size): w_hh is (G*H, P) and the first
// state (B, P).
void check_inputs(const char* name, int64_t gates, const Tensor& x,
                  std::initializer_list<Tensor> states, const Tensor& w_ih, const Tensor& w_hh,
                  const Tensor& b_ih, const Tensor& b_hh, const Tensor& mask,
                  const Tensor& w_hr = Tensor());

}  // namespace rnnkit
