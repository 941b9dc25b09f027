// Helpers shared by the compiled Elman, GRU and LSTM passes.
#include <algorithm>
#include <tuple>
#include <vector>

#include "common.h"
#include "loop.h"

namespace rnnkit {

namespace {

// bias + bias2 as one row of n values (either may be undefined; empty when both are).
template <typename T>
std::vector<T> bias_row(const Tensor& bias_in, const Tensor& bias2_in, int64_t n) {
  const Tensor bias = contiguous_or_empty(bias_in), bias2 = contiguous_or_empty(bias2_in);
  std::vector<T> row;
  for (const Tensor* b : {&bias, &bias2}) {
    if (!b->defined()) continue;
    const T* v = b->data_ptr<T>();
    if (row.empty()) {
      row.assign(v, v + n);
    } else {
      for (int64_t j = 0; j < n; ++j) row[j] += v[j];
    }
  }
  return row;
}

// out (rows, width) = x (rows, features) @ w^T + bias + bias2 with the library product: every
// row starts as the bias row, written by both threads (the first touch of a fresh buffer's
// pages is a good part of its cost).
template <typename T>
void library_product(T* out, const T* x, int64_t rows, int64_t features, const Tensor& w,
                     const Tensor& bias, const Tensor& bias2) {
  const int64_t width = w.size(0);
  const std::vector<T> row = bias_row<T>(bias, bias2, width);
  if (!row.empty()) {
    at::parallel_for(0, rows, std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(width, 1)),
                     [&](int64_t r0, int64_t r1) {
                       for (int64_t r = r0; r < r1; ++r) {
                         std::copy(row.begin(), row.end(), out + r * width);
                       }
                     });
  }
  gemm(Op::N, Op::T, rows, width, features, T(1), x, features, w.data_ptr<T>(), features,
       row.empty() ? T(0) : T(1), out, width);
}

}  // namespace

void library_projection(float* out, const float* x, int64_t rows, int64_t features,
                        const Tensor& w, const Tensor& bias, const Tensor& bias2) {
  library_product(out, x, rows, features, w, bias, bias2);
}

std::vector<float> summed_bias(const Tensor& bias, const Tensor& bias2, int64_t n) {
  return bias_row<float>(bias, bias2, n);
}

Tensor project_inputs(const Tensor& x, const Tensor& w, const Tensor& bias,
                      const Tensor& bias2) {
  const int64_t rows = x.size(0) * x.size(1), features = x.size(2), width = w.size(0);
  Tensor out = at::empty({x.size(0), x.size(1), width}, x.options());
  if (x.scalar_type() == at::kFloat && fused::takes<float>()) {
    fused::Projection(w, bias, bias2)(x.data_ptr<float>(), rows, out.data_ptr<float>());
    return out;
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "project_inputs", [&] {
    library_product(out.data_ptr<scalar_t>(), x.data_ptr<scalar_t>(), rows, features, w, bias,
                    bias2);
  });
  return out;
}

int64_t chunk_steps(int64_t steps, int64_t batch, int64_t width) {
  constexpr int64_t kChunkBytes = int64_t(1) << 20;
  const int64_t per_step = std::max<int64_t>(1, batch * width * int64_t(sizeof(float)));
  return std::min(steps, std::max<int64_t>(4, kChunkBytes / per_step));
}

Tensor recurrent_weight_grad(const Tensor& d, int64_t ld_offset, int64_t gates_width,
                             const Tensor& states, const Tensor& h0, bool reverse,
                             const Tensor& zero_mask) {
  const int64_t steps = states.size(0), batch = states.size(1), hidden = states.size(2);
  const int64_t ld = d.size(2);
  if (steps == 0) return at::zeros({gates_width, hidden}, states.options());
  Tensor dw = at::empty({gates_width, hidden}, states.options());
  AT_DISPATCH_FLOATING_TYPES(states.scalar_type(), "recurrent_weight_grad", [&] {
    const scalar_t* g = d.data_ptr<scalar_t>() + ld_offset;
    const scalar_t* h = states.data_ptr<scalar_t>();
    scalar_t* w = dw.data_ptr<scalar_t>();
    const int64_t shifted = (steps - 1) * batch;  // rows whose previous state is in `states`
    // forward: step t >= 1 started from states[t-1]; reversed: step t < T-1 from states[t+1]
    const scalar_t* g_shifted = reverse ? g : g + batch * ld;
    const scalar_t* h_shifted = reverse ? h + batch * hidden : h;
    const scalar_t* g_first = reverse ? g + shifted * ld : g;
    gemm(Op::T, Op::N, gates_width, hidden, shifted, scalar_t(1), g_shifted, ld, h_shifted,
         hidden, scalar_t(0), w, hidden);
    gemm(Op::T, Op::N, gates_width, hidden, batch, scalar_t(1), g_first, ld,
         h0.data_ptr<scalar_t>(), hidden, scalar_t(1), w, hidden);
    if (!zero_mask.defined()) return;
    // Zero padding: a kept step after masked ones met a zeroed row above; add d_t^T held.
    const bool* keep = zero_mask.data_ptr<bool>();
    const std::vector<int64_t> sources = held_sources(keep, steps, batch, reverse);
    const scalar_t* h0_data = h0.data_ptr<scalar_t>();
    for (int64_t s = 1; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s, previous = reverse ? t + 1 : t - 1;
      for (int64_t b = 0; b < batch; ++b) {
        if (!keep[t * batch + b] || keep[previous * batch + b]) continue;
        const scalar_t* held = held_state(sources, h, h0_data, t, batch, b, hidden);
        const scalar_t* dt = at_step(g, t, batch, b, ld);
        for (int64_t i = 0; i < gates_width; ++i) {
          scalar_t* wi = w + i * hidden;
          for (int64_t k = 0; k < hidden; ++k) wi[k] += dt[i] * held[k];
        }
      }
    }
  });
  return dw;
}

namespace {

// One thread's share of a weight gradient, w (cols, width) += d^T src over the blocks of rows
// that weight_grads walks: d's columns [c0, c1) (rows of w) times a source of `width` columns
// (x, or the previous states). A source of at least 32 columns is the product's vectors (the
// micro-kernel's blocks of 4 or 2 vectors); a narrower one (D = 1 in a univariate series)
// would leave most lanes empty, so then d's columns are the vectors and the source the
// broadcasts, into a transposed (width, c1 - c0) buffer added to w at the end (measured, d in
// L2: D = 1 73 against 7 GFLOP/s, D = 16 160 against 102; D >= 32 within 10%).
class GradientShare {
 public:
  GradientShare(float* w, int64_t width, int64_t c0, int64_t c1)
      : w_(w), width_(width), c0_(c0), c1_(c1),
        transposed_(width < 32 ? static_cast<size_t>(width * (c1 - c0)) : 0, 0.0f) {}
  // the rows [k0, k0 + depth) of d (row stride ld, from column c0) and of src (row stride width)
  void add(const float* d, int64_t ld, const float* src, int64_t depth) {
    const micro::Isa isa = micro::Isa::Avx512;
    if (transposed_.empty()) {
      micro::gradient_product(isa, d, ld, src, width_, depth, c1_ - c0_, w_ + c0_ * width_,
                              width_, width_);
    } else {
      micro::gradient_product(isa, src, width_, d, ld, depth, width_, transposed_.data(),
                              c1_ - c0_, c1_ - c0_);
    }
  }
  void finish() {
    if (transposed_.empty()) return;
    const int64_t n = c1_ - c0_;
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < width_; ++j) w_[(c0_ + i) * width_ + j] += transposed_[j * n + i];
    }
  }

 private:
  float* w_;
  int64_t width_, c0_, c1_;
  std::vector<float> transposed_;
};

}  // namespace

bool weight_grads(const float* d, int64_t ld, int64_t n, int64_t steps, int64_t batch,
                  const float* x, int64_t features, float* dw_ih, const float* states,
                  const float* h0, int64_t state, bool reverse, int64_t hh_cols, float* dw_hh,
                  float* db) {
  if (micro::fused_isa() != micro::Isa::Avx512 || at::in_parallel_region()) return false;
  if (dw_ih != nullptr) std::fill(dw_ih, dw_ih + n * features, 0.0f);
  if (dw_hh != nullptr) std::fill(dw_hh, dw_hh + hh_cols * state, 0.0f);
  if (db != nullptr) std::fill(db, db + n, 0.0f);
  const int64_t rows = steps * batch;
  // Blocks of kDepth rows of d: a block (kDepth x n floats) stays in L2 while the bias sum (a
  // sequential read that brings it in) and both products read it. Measured on the 2-core
  // AVX-512 machine, d cold as after the loop: 32 to 256 rows within 10% of each other, the
  // three in one pass 1.1x (B=32, H=64) to 1.3x (B=128, H=128) as fast as three passes.
  constexpr int64_t kDepth = 64;
  // the rows of the first processed step read h0: a block never straddles their edge
  const int64_t first = reverse ? (steps - 1) * batch : 0;
  const double flops =
      2.0 * rows * n * ((dw_ih != nullptr ? features : 0) + (dw_hh != nullptr ? state : 0));
  over_batch(n, flops, [&](int64_t c0, int64_t c1) {
    std::vector<float> sums(db != nullptr ? c1 - c0 : 0);
    const int64_t hh1 = std::min(c1, hh_cols);  // this thread's columns of dw_hh: [c0, hh1)
    GradientShare ih(dw_ih, features, c0, c1), hh(dw_hh, state, c0, std::max(c0, hh1));
    for (int64_t k0 = 0, k1; k0 < rows; k0 = k1) {
      k1 = std::min(rows, k0 + kDepth);
      for (const int64_t edge : {first, first + batch}) {
        if (k0 < edge && k1 > edge) k1 = edge;
      }
      const float* dk = d + k0 * ld + c0;
      if (db != nullptr) {  // a sum per block, then onto db: error ~ (kDepth + rows / kDepth) ulp
        std::fill(sums.begin(), sums.end(), 0.0f);
        float* s = sums.data();
        for (int64_t k = 0; k < k1 - k0; ++k) {
          const float* row = dk + k * ld;
#pragma omp simd
          for (int64_t j = 0; j < c1 - c0; ++j) s[j] += row[j];
        }
        for (int64_t j = c0; j < c1; ++j) db[j] += s[j - c0];
      }
      if (dw_ih != nullptr) ih.add(dk, ld, x + k0 * features, k1 - k0);
      if (dw_hh != nullptr && c0 < hh1) {
        const bool initial = k0 >= first && k0 < first + batch;
        hh.add(dk, ld,
               initial ? h0 + (k0 - first) * state
                       : states + (reverse ? k0 + batch : k0 - batch) * state,
               k1 - k0);
      }
    }
    if (dw_ih != nullptr) ih.finish();
    if (dw_hh != nullptr && c0 < hh1) hh.finish();
  });
  return true;
}

std::vector<int64_t> held_sources(const bool* mask, int64_t steps, int64_t batch, bool reverse) {
  std::vector<int64_t> sources(steps * batch);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t last = -1;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s;
      sources[t * batch + b] = last;
      if (mask[t * batch + b]) last = t;
    }
  }
  return sources;
}

Tensor matmul(const Tensor& a, Op op_a, const Tensor& b, Op op_b) {
  const int64_t m = a.size(op_a == Op::N ? 0 : 1), k = a.size(op_a == Op::N ? 1 : 0);
  const int64_t n = b.size(op_b == Op::N ? 1 : 0);
  Tensor out = at::empty({m, n}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "matmul", [&] {
    gemm(op_a, op_b, m, n, k, scalar_t(1), a.data_ptr<scalar_t>(), a.size(1),
         b.data_ptr<scalar_t>(), b.size(1), scalar_t(0), out.data_ptr<scalar_t>(), n);
  });
  return out;
}

Tensor last_state(const Tensor& out, const Tensor& h0, bool reverse, const Tensor& zero_mask) {
  const int64_t steps = out.size(0), batch = out.size(1), hidden = out.size(2);
  Tensor state = at::empty({batch, hidden}, out.options());  // a copy, without the dispatcher
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "last_state", [&] {
    const scalar_t* states = out.data_ptr<scalar_t>();
    const scalar_t* initial = h0.data_ptr<scalar_t>();
    scalar_t* to = state.data_ptr<scalar_t>();
    if (zero_mask.defined()) {  // each row's last kept step, or h0
      const bool* keep = zero_mask.data_ptr<bool>();
      for (int64_t b = 0; b < batch; ++b) {
        const scalar_t* from = initial + b * hidden;
        for (int64_t s = steps - 1; s >= 0; --s) {
          const int64_t t = reverse ? steps - 1 - s : s;
          if (keep[t * batch + b]) {
            from = at_step(states, t, batch, b, hidden);
            break;
          }
        }
        std::copy(from, from + hidden, to + b * hidden);
      }
      return;
    }
    const scalar_t* from =
        steps == 0 ? initial : at_step(states, reverse ? 0 : steps - 1, batch, 0, hidden);
    std::copy(from, from + batch * hidden, to);
  });
  return state;
}

Tensor bias_or_zeros(const Tensor& bias, int64_t size, const Tensor& like) {
  return bias.defined() ? bias.contiguous() : at::zeros({size}, like.options());
}

std::tuple<Tensor, int64_t, int64_t> prefix_mask(const Tensor& lengths_in, int64_t steps) {
  TORCH_CHECK(lengths_in.dim() == 1 && lengths_in.device().is_cpu() &&
                  at::isIntegralType(lengths_in.scalar_type(), /*includeBool=*/false),
              "prefix_mask: lengths must be a 1-D integer CPU tensor, got ",
              lengths_in.scalar_type(), " of shape ", lengths_in.sizes());
  const Tensor lengths = lengths_in.to(at::kLong).contiguous();
  const int64_t batch = lengths.size(0);
  const int64_t* n = lengths.data_ptr<int64_t>();
  Tensor mask = at::empty({steps, batch}, lengths.options().dtype(at::kBool));
  bool* m = mask.data_ptr<bool>();
  for (int64_t t = 0; t < steps; ++t) {
    for (int64_t b = 0; b < batch; ++b) m[t * batch + b] = t < n[b];
  }
  const auto [low, high] = batch == 0 ? std::pair<int64_t, int64_t>{0, 0}
                                      : std::pair{*std::min_element(n, n + batch),
                                                  *std::max_element(n, n + batch)};
  return {mask, low, high};
}

void zero_masked_(const Tensor& out, const Tensor& mask_in) {
  TORCH_CHECK(out.dim() == 3 && out.device().is_cpu() && out.is_contiguous() &&
                  (out.scalar_type() == at::kFloat || out.scalar_type() == at::kDouble),
              "zero_masked_: out must be a contiguous (T, B, F) float32/float64 CPU tensor, got ",
              out.scalar_type(), " of shape ", out.sizes());
  const int64_t rows = out.size(0) * out.size(1), width = out.size(2);
  TORCH_CHECK(mask_in.scalar_type() == at::kBool && mask_in.device().is_cpu() &&
                  mask_in.sizes() == out.sizes().slice(0, 2),
              "zero_masked_: mask must be a (T, B) = ", out.sizes().slice(0, 2),
              " CPU bool tensor, got ", mask_in.scalar_type(), " of shape ", mask_in.sizes());
  const Tensor mask = mask_in.contiguous();
  const bool* keep = mask.data_ptr<bool>();
  AT_DISPATCH_FLOATING_TYPES(out.scalar_type(), "zero_masked_", [&] {
    scalar_t* o = out.data_ptr<scalar_t>();
    for (int64_t r = 0; r < rows; ++r) {
      if (!keep[r]) std::fill(o + r * width, o + (r + 1) * width, scalar_t(0));
    }
  });
}

namespace {

void check_shape(const char* name, const char* role, const Tensor& t,
                 std::vector<int64_t> expected) {
  TORCH_CHECK(t.sizes() == at::IntArrayRef(expected), name, ": ", role, " must have shape ",
              at::IntArrayRef(expected), ", got ", t.sizes());
}

}  // namespace

void check_inputs(const char* name, int64_t gates, const Tensor& x,
                  std::initializer_list<Tensor> states, const Tensor& w_ih, const Tensor& w_hh,
                  const Tensor& b_ih, const Tensor& b_hh, const Tensor& mask,
                  const Tensor& w_hr) {
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, name,
              ": backend 'compiled' runs float32 and float64, got ", x.scalar_type());
  TORCH_CHECK(x.dim() == 3, name, ": x must be (T, B, D), got shape ", x.sizes());
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) % gates == 0, name, ": w_hh must be (",
              gates, "*H, ", w_hr.defined() ? "P" : "H", "), got shape ", w_hh.sizes());
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(0) / gates;
  if (w_hr.defined()) {
    TORCH_CHECK(w_hr.dim() == 2, name, ": w_hr must be (P, H), got shape ", w_hr.sizes());
    check_shape(name, "w_hr", w_hr, {w_hr.size(0), hidden});
  }
  const int64_t width = w_hr.defined() ? w_hr.size(0) : hidden;  // what w_hh multiplies
  check_shape(name, "w_hh", w_hh, {gates * hidden, width});
  check_shape(name, "w_ih", w_ih, {gates * hidden, x.size(2)});
  bool first = true;
  for (const Tensor& s : states) {
    check_shape(name, "the initial state", s, {batch, first ? width : hidden});
    first = false;
  }
  if (b_ih.defined()) check_shape(name, "b_ih", b_ih, {gates * hidden});
  if (b_hh.defined()) check_shape(name, "b_hh", b_hh, {gates * hidden});
  std::vector<Tensor> all{x, w_ih, w_hh, b_ih, b_hh, w_hr};
  all.insert(all.end(), states.begin(), states.end());
  for (const Tensor& t : all) {
    if (!t.defined()) continue;
    TORCH_CHECK(t.device().is_cpu(), name, ": backend 'compiled' runs on CPU tensors, got ",
                t.device());
    TORCH_CHECK(t.scalar_type() == x.scalar_type(), name,
                ": every tensor must have the input's dtype ", x.scalar_type(), ", got ",
                t.scalar_type());
  }
  if (mask.defined()) {
    TORCH_CHECK(mask.scalar_type() == at::kBool && mask.device().is_cpu(), name,
                ": mask must be a CPU bool tensor, got ", mask.scalar_type(), " on ",
                mask.device());
    check_shape(name, "mask", mask, {steps, batch});
  }
}

}  // namespace rnnkit
