// Elman recurrence, compiled: h_t = act(x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T).
//
// Forward: the input projection of all steps is written straight into the output buffer
// (T, B, H); each step then adds h_{t-1} W_hh^T onto its slice (one small matrix product) and
// applies the activation in place. Backward: one loop back over time forms d pre_t for every
// step (its elementwise part fused into one pass), and every weight gradient is one matrix
// product after the loop.
#include "cell.h"
#include "common.h"
#include "fused_loops.h"

namespace rnnkit {
namespace {

// Copy the previous state into the rows whose mask is False: those sequences hold their state.
template <typename T>
void hold_rows(T* state, const T* previous, const bool* keep, int64_t rows, int64_t width) {
  for (int64_t i = 0; i < rows; ++i) {
    if (!keep[i]) std::copy(previous + i * width, previous + (i + 1) * width, state + i * width);
  }
}

// out holds the input projections on entry and the states on return (zero at masked steps
// with `zero`: see zero_rows in common.h).
template <typename T>
void forward_loop(T* out, const T* h0, const T* w_hh, const bool* mask, int64_t steps,
                  int64_t batch, int64_t hidden, bool reverse, bool relu, bool zero) {
  if constexpr (std::is_same_v<T, float>) {  // dense float32: the fused micro-kernel steps
    if (fused::takes<T>(mask)) {
      return fused::elman_forward(out, h0, w_hh, steps, batch, hidden, reverse, relu);
    }
  }
  const double flops = 2.0 * steps * batch * hidden * hidden;
  over_batch(batch, flops, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0, n = rows * hidden;
    const T* h = h0 + b0 * hidden;
    T* previous = nullptr;       // the previous step's output rows, once h points at them
    const bool* held = nullptr;  // and that step's mask
    const PackedRight<T> recurrent(Op::T, rows, hidden, hidden, w_hh, hidden);  // @ W_hh^T
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s;
      T* o = at_step(out, t, batch, b0, hidden);  // (rows, H)
      recurrent.multiply(h, hidden, T(1), o, hidden);
      if (relu) {
        for (int64_t k = 0; k < n; ++k) o[k] = o[k] > T(0) ? o[k] : T(0);
      } else {
        for (int64_t k = 0; k < n; ++k) o[k] = tanh_(o[k]);
      }
      if (mask != nullptr) {
        const bool* keep = mask + t * batch + b0;
        hold_rows(o, h, keep, rows, hidden);
        if (zero && held != nullptr) zero_rows(previous, held, rows, hidden);
        held = keep;
      }
      h = previous = o;
    }
    if (zero && held != nullptr) zero_rows(previous, held, rows, hidden);
  });
}

// dh enters as d h_n and leaves as d h0; d_pre (T, B, H) receives d pre_t of every step. With
// `zero` the outputs at masked steps were constants: their gradients are not passed on.
template <typename T>
void backward_loop(const T* d_out, T* dh, const T* out, const T* w_hh, const bool* mask,
                   T* d_pre, int64_t steps, int64_t batch, int64_t hidden, bool reverse,
                   bool relu, bool zero) {
  if constexpr (std::is_same_v<T, float>) {  // dense float32: the fused micro-kernel steps
    if (fused::takes<T>(mask)) {
      return fused::elman_backward(d_out, dh, out, w_hh, d_pre, steps, batch, hidden, reverse,
                                   relu);
    }
  }
  const double flops = 2.0 * steps * batch * hidden * hidden;
  over_batch(batch, flops, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    T* g = dh + b0 * hidden;  // (rows, H): d loss / d h_t, carried back through time
    const PackedRight<T> recurrent(Op::N, rows, hidden, hidden, w_hh, hidden);  // @ W_hh
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? s : steps - 1 - s;
      const bool* keep = mask == nullptr ? nullptr : mask + t * batch + b0;
      for (int64_t i = 0; i < rows; ++i) {
        const T* h = at_step(out, t, batch, b0 + i, hidden);
        const T* go = at_step(d_out, t, batch, b0 + i, hidden);
        T* dp = at_step(d_pre, t, batch, b0 + i, hidden);
        T* gi = g + i * hidden;
        if (keep != nullptr && !keep[i]) {  // held: no gradient into pre_t, d h passes through
          if (!zero) {
            for (int64_t k = 0; k < hidden; ++k) gi[k] += go[k];
          }
          std::fill(dp, dp + hidden, T(0));
          continue;
        }
#pragma omp simd  // dp may be go itself (an output gradient the backward owns): same index
        for (int64_t k = 0; k < hidden; ++k) {
          const T slope = relu ? (h[k] > T(0) ? T(1) : T(0)) : T(1) - h[k] * h[k];
          dp[k] = (gi[k] + go[k]) * slope;
        }
        if (keep != nullptr) std::fill(gi, gi + hidden, T(0));  // replaced by dp W_hh below
      }
      // d h_{t-1} = d pre_t W_hh (+ the held rows' carried gradient, whose dp is zero)
      recurrent.multiply(at_step(d_pre, t, batch, b0, hidden), hidden,
                         keep != nullptr ? T(1) : T(0), g, hidden);
    }
  });
}

Tensor run_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                   const Tensor& b_ih, const Tensor& b_hh, const Tensor& mask, bool reverse,
                   bool relu, bool zero) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(0);
  const int64_t chunk = chunk_steps(steps, batch, hidden);
  if (chunk < steps && x.scalar_type() == at::kFloat &&
      fused::takes<float>(mask.defined() ? mask.data_ptr<bool>() : nullptr)) {
    // the projections are the outputs' first value: each chunk's, right before its steps
    Tensor out = at::empty({steps, batch, hidden}, x.options());
    const micro::Panel panel =
        micro::elman_forward_panel(micro::fused_isa(), w_hh.data_ptr<float>(), hidden);
    float* o = out.data_ptr<float>();
    const int64_t stride = batch * hidden;  // one step of out
    fused::in_chunks(
        x, w_ih, b_ih, b_hh, chunk, reverse,
        [&](float* gates, int64_t t0, int64_t n, bool first) {
          const float* h = first ? h0.data_ptr<float>() : o + (reverse ? t0 + n : t0 - 1) * stride;
          fused::elman_forward(panel, gates, h, n, batch, hidden, reverse, relu);
        },
        o);
    return out;
  }
  Tensor out = project_inputs(x, w_ih, b_ih, b_hh);  // (T, B, H)
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "elman_forward", [&] {
    forward_loop(out.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
                 mask.defined() ? mask.data_ptr<bool>() : nullptr, steps, batch, hidden,
                 reverse, relu, zero);
  });
  return out;
}

}  // namespace

std::tuple<Tensor, Tensor> elman_forward(const Tensor& x_in, const Tensor& h0_in,
                                         const Tensor& w_ih_in, const Tensor& w_hh_in,
                                         const Tensor& b_ih, const Tensor& b_hh,
                                         const Tensor& mask_in, bool reverse, bool relu,
                                         bool zero) {
  check_inputs("elman", 1, x_in, {h0_in}, w_ih_in, w_hh_in, b_ih, b_hh, mask_in);
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  Tensor out = run_forward(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, relu, zero);
  return {out, last_state(out, h0, reverse, zero ? mask : Tensor())};
}

std::array<Tensor, 6> elman_backward(const Tensor& grad_out, const Tensor& grad_h_n,
                                     const Tensor& x_in, const Tensor& h0_in,
                                     const Tensor& w_ih_in, const Tensor& w_hh_in,
                                     const Tensor& out, const Tensor& mask_in, bool reverse,
                                     bool relu, bool zero, std::array<bool, 6> output_mask) {
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = w_hh.size(0);
  const OutputGrad d_out = output_grad(grad_out);
  Tensor dh = grad_h_n.contiguous().clone();
  // each d pre_t is written over the d out_t it was formed from, when that buffer is ours
  Tensor d_pre = d_out.owned ? d_out.grad : at::empty_like(out);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "elman_backward", [&] {
    backward_loop(d_out.grad.data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(),
                  out.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
                  mask.defined() ? mask.data_ptr<bool>() : nullptr, d_pre.data_ptr<scalar_t>(),
                  steps, batch, hidden, reverse, relu, zero);
  });
  const Tensor flat = d_pre.view({steps * batch, hidden});
  std::array<Tensor, 6> grads;
  grads.fill(unused(x));
  if (output_mask[0]) grads[0] = matmul(flat, Op::N, w_ih, Op::N).view({steps, batch, features});
  if (output_mask[1]) grads[1] = dh;
  if (output_mask[2]) grads[2] = matmul(flat, Op::T, x.view({steps * batch, features}), Op::N);
  if (output_mask[3]) {
    grads[3] = recurrent_weight_grad(d_pre, 0, hidden, out, h0, reverse, zero ? mask : Tensor());
  }
  if (output_mask[4] || output_mask[5]) {
    const Tensor db = threads::sum_rows(flat);
    if (output_mask[4]) grads[4] = db;
    if (output_mask[5]) grads[5] = output_mask[4] ? db.clone() : db;
  }
  return grads;
}

// The operator rnnkit::rnn (see cell.h). Forward tensors: x, h0, w_ih, w_hh, b_ih, b_hh, mask;
// flags: reverse, zero_padding, train (its only buffer is out), relu.
Tensors rnn_forward_entry(const Tensors& t, const Flags& f) {
  return as_vector(elman_forward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], f[0], f[3], f[1]));
}
// tensors: grad_out, grad_h_n, x, h0, w_ih, w_hh, b_ih, b_hh, out, mask; flags: reverse,
// zero_padding, relu
Tensors rnn_backward_entry(const Tensors& t, const Flags& f, const Flags& needs) {
  return as_vector(elman_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[8], t[9], f[0], f[2],
                                  f[1], as_array<6>(needs)));
}

}  // namespace rnnkit

RNNKIT_CELL(rnn, rnnkit::rnn_forward_entry, rnnkit::rnn_backward_entry)
