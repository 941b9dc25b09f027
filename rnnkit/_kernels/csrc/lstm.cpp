// LSTM recurrence (gates i, f, g, o), compiled.
//
// With gx = x W_ih^T + b_ih + b_hh for all steps (one matrix product), per step:
//     i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gx + h W_hh^T)
//     c' = f * c + i * g;  h' = o * tanh(c')
// The projections are written into the gates buffer (T, B, 4H); each step adds h W_hh^T onto
// its slice (one small matrix product) and replaces it by the activated gates in the same pass
// that updates c and h. The backward pass's gate gradients are one fused pass per step.
#include "cell.h"
#include "common.h"
#include "fused_loops.h"

namespace rnnkit {
namespace {

// gates (T, B, 4H): projections on entry, activated gates on return. out (T, B, H): states h.
// c_all (T, B, H) receives c of every step when not null; else c lives in a per-thread buffer.
// c_n (B, H) receives the final cell state.
template <typename T>
void forward_loop(T* gates, T* out, T* c_all, T* c_n, const T* h0, const T* c0, const T* w_hh,
                  const bool* mask, int64_t steps, int64_t batch, int64_t hidden, bool reverse,
                  bool zero) {
  if constexpr (std::is_same_v<T, float>) {  // dense float32: the fused micro-kernel steps
    if (fused::takes<T>(mask)) {
      return fused::lstm_forward(gates, out, c_all, c_n, h0, c0, w_hh, steps, batch, hidden,
                                 reverse);
    }
  }
  const int64_t width = 4 * hidden;
  const double flops = 2.0 * steps * batch * width * hidden;
  over_batch(batch, flops, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    // Without c_all, c alternates between two halves of a scratch buffer: an update in place
    // would alias its input, and the compiler's alias check would then skip the vector loop.
    std::vector<T> c_buffer(c_all == nullptr ? 2 * rows * hidden : 0);
    const T* h = h0 + b0 * hidden;
    const T* c = c0 + b0 * hidden;
    T* previous = nullptr;       // the previous step's output rows, once h points at them
    const bool* held = nullptr;  // and that step's mask
    const PackedRight<T> recurrent(Op::T, rows, width, hidden, w_hh, hidden);  // @ W_hh^T
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s;
      T* a = at_step(gates, t, batch, b0, width);  // (rows, 4H)
      recurrent.multiply(h, hidden, T(1), a, width);
      T* o = at_step(out, t, batch, b0, hidden);
      T* c_new = c_all == nullptr ? c_buffer.data() + (s % 2) * rows * hidden
                                  : at_step(c_all, t, batch, b0, hidden);
      for (int64_t r = 0; r < rows; ++r) {
        T* ar = a + r * width;
        const T* cp = c + r * hidden;
        const T* hp = h + r * hidden;
        T* cr = c_new + r * hidden;
        T* hr = o + r * hidden;
        if (mask != nullptr && !mask[t * batch + b0 + r]) {  // held
          std::copy(cp, cp + hidden, cr);
          std::copy(hp, hp + hidden, hr);
          continue;
        }
        // The gate slices of a row sit at offsets GCC cannot prove disjoint; without this the
        // loop stays scalar (measured: half the speed of a small LSTM step).
#pragma omp simd
        for (int64_t j = 0; j < hidden; ++j) {
          const T ig = sigmoid(ar[j]);
          const T fg = sigmoid(ar[hidden + j]);
          const T gg = tanh_(ar[2 * hidden + j]);
          const T og = sigmoid(ar[3 * hidden + j]);
          const T cj = fg * cp[j] + ig * gg;
          ar[j] = ig;
          ar[hidden + j] = fg;
          ar[2 * hidden + j] = gg;
          ar[3 * hidden + j] = og;
          cr[j] = cj;
          hr[j] = og * tanh_(cj);
        }
      }
      if (mask != nullptr) {  // zero padding: the previous step's held rows have been read
        if (zero && held != nullptr) zero_rows(previous, held, rows, hidden);
        held = mask + t * batch + b0;
      }
      h = previous = o;
      c = c_new;
    }
    if (zero && held != nullptr) zero_rows(previous, held, rows, hidden);
    std::copy(c, c + rows * hidden, c_n + b0 * hidden);
  });
}

// dh, dc enter as d h_n, d c_n and leave as d h0, d c0; d_gates (T, B, 4H) receives the
// gradients of the pre-activation gates of every step. d_out is read with its own strides.
template <typename T>
void backward_loop(const StridedRows<T>& d_out, T* dh, T* dc, const T* c_all, const T* c0,
                   const T* gates, const T* w_hh, const bool* mask, T* d_gates, int64_t steps,
                   int64_t batch, int64_t hidden, bool reverse, bool zero) {
  if constexpr (std::is_same_v<T, float>) {  // dense float32: the fused micro-kernel steps
    if (fused::takes<T>(mask)) {
      return fused::lstm_backward(d_out, dh, dc, c_all, c0, gates, w_hh, d_gates, steps, batch,
                                  hidden, reverse);
    }
  }
  const int64_t width = 4 * hidden;
  const double flops = 2.0 * steps * batch * width * hidden;
  over_batch(batch, flops, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    T* carry_h = dh + b0 * hidden;  // (rows, H)
    T* carry_c = dc + b0 * hidden;
    std::vector<T> scratch(hidden);  // a strided d_out row, gathered
    const PackedRight<T> recurrent(Op::N, rows, hidden, width, w_hh, hidden);  // @ W_hh
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? s : steps - 1 - s;
      const T* cp_rows = previous_state(c_all, c0, t, steps, batch, b0, hidden, reverse);
      T* da = at_step(d_gates, t, batch, b0, width);
      for (int64_t r = 0; r < rows; ++r) {
        const T* g = at_step(gates, t, batch, b0 + r, width);
        const T* ct = at_step(c_all, t, batch, b0 + r, hidden);
        const T* go = d_out.row(t, b0 + r, scratch.data(), hidden);
        const T* cp = cp_rows + r * hidden;
        T* dar = da + r * width;
        T* gh = carry_h + r * hidden;
        T* gc = carry_c + r * hidden;
        if (mask != nullptr && !mask[t * batch + b0 + r]) {  // held: gradients pass through
          if (!zero) {  // with zero padding the output here was a constant
            for (int64_t j = 0; j < hidden; ++j) gh[j] += go[j];
          }
          std::fill(dar, dar + width, T(0));
          continue;
        }
#pragma omp simd  // as in the forward pass
        for (int64_t j = 0; j < hidden; ++j) {
          const T ig = g[j], fg = g[hidden + j], gg = g[2 * hidden + j], og = g[3 * hidden + j];
          const T total = gh[j] + go[j];
          const T tc = tanh_(ct[j]);
          const T dct = gc[j] + total * og * (T(1) - tc * tc);
          dar[j] = dct * gg * ig * (T(1) - ig);
          dar[hidden + j] = dct * cp[j] * fg * (T(1) - fg);
          dar[2 * hidden + j] = dct * ig * (T(1) - gg * gg);
          dar[3 * hidden + j] = total * tc * og * (T(1) - og);
          gc[j] = dct * fg;
          gh[j] = T(0);
        }
      }
      recurrent.multiply(da, width, T(1), carry_h, hidden);
    }
  });
}

struct Forward {
  Tensor out, gates, c_all, c_n;
};

Forward run_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                    const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                    const Tensor& mask, bool reverse, bool keep_for_backward, bool zero) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1);
  Forward f;
  f.out = at::empty({steps, batch, hidden}, x.options());
  f.c_n = at::empty({batch, hidden}, x.options());
  const int64_t chunk = chunk_steps(steps, batch, 4 * hidden);
  if (chunk < steps && x.scalar_type() == at::kFloat &&
      fused::takes<float>(mask.defined() ? mask.data_ptr<bool>() : nullptr)) {
    // training keeps every step's gates and c, each chunk's projected into its own steps
    if (keep_for_backward) {
      f.gates = at::empty({steps, batch, 4 * hidden}, x.options());
      f.c_all = at::empty({steps, batch, hidden}, x.options());
    }
    const micro::Panel panel = micro::gate_panel(micro::fused_isa(), w_hh.data_ptr<float>(), 4,
                                                 hidden);
    float* out = f.out.data_ptr<float>();
    float* c_n = f.c_n.data_ptr<float>();
    float* c_all = keep_for_backward ? f.c_all.data_ptr<float>() : nullptr;
    const int64_t stride = batch * hidden;  // one step of out
    fused::in_chunks(
        x, w_ih, b_ih, b_hh, chunk, reverse,
        [&](float* gates, int64_t t0, int64_t n, bool first) {
          // a chunk starts from the state the previous one ended at
          const int64_t before = (reverse ? t0 + n : t0 - 1) * stride;
          const float* h = first ? h0.data_ptr<float>() : out + before;
          const float* c = first ? c0.data_ptr<float>() : c_n;  // the last chunk's c
          fused::lstm_forward(panel, gates, out + t0 * stride,
                              c_all ? c_all + t0 * stride : nullptr, c_n, h, c, n, batch,
                              hidden, reverse);
        },
        keep_for_backward ? f.gates.data_ptr<float>() : nullptr);
    return f;
  }
  f.gates = project_inputs(x, w_ih, b_ih, b_hh);  // (T, B, 4H)
  if (keep_for_backward) f.c_all = at::empty({steps, batch, hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    forward_loop(f.gates.data_ptr<scalar_t>(), f.out.data_ptr<scalar_t>(),
                 keep_for_backward ? f.c_all.data_ptr<scalar_t>() : nullptr,
                 f.c_n.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(),
                 w_hh.data_ptr<scalar_t>(), mask.defined() ? mask.data_ptr<bool>() : nullptr,
                 steps, batch, hidden, reverse, zero);
  });
  return f;
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward(
    const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_ih_in,
    const Tensor& w_hh_in, const Tensor& b_ih, const Tensor& b_hh, const Tensor& mask_in,
    bool reverse, bool zero, bool train) {
  check_inputs("lstm", 4, x_in, {h0_in, c0_in}, w_ih_in, w_hh_in, b_ih, b_hh, mask_in);
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  Forward f = run_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, reverse, train, zero);
  Tensor h_n = last_state(f.out, h0, reverse, zero ? mask : Tensor());
  if (!train) return {f.out, h_n, f.c_n, unused(x), unused(x)};
  return {f.out, h_n, f.c_n, f.gates, f.c_all};
}

std::array<Tensor, 7> lstm_backward(const Tensor& grad_out, const Tensor& grad_h_n,
                                    const Tensor& grad_c_n, const Tensor& x_in,
                                    const Tensor& h0_in, const Tensor& c0_in,
                                    const Tensor& w_ih_in, const Tensor& w_hh_in,
                                    const Tensor& out, const Tensor& gates, const Tensor& c_all,
                                    const Tensor& mask_in, bool reverse, bool zero,
                                    std::array<bool, 7> output_mask) {
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = w_hh.size(1);
  Tensor dh = grad_h_n.contiguous().clone();
  Tensor dc = grad_c_n.contiguous().clone();
  Tensor d_gates = at::empty_like(gates);  // (T, B, 4H)
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_backward", [&] {
    backward_loop(StridedRows<scalar_t>(grad_out), dh.data_ptr<scalar_t>(),
                  dc.data_ptr<scalar_t>(), c_all.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(),
                  gates.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
                  mask.defined() ? mask.data_ptr<bool>() : nullptr, d_gates.data_ptr<scalar_t>(),
                  steps, batch, hidden, reverse, zero);
  });
  const Tensor flat = d_gates.view({steps * batch, 4 * hidden});
  std::array<Tensor, 7> grads;
  grads.fill(unused(x));
  if (output_mask[0]) grads[0] = matmul(flat, Op::N, w_ih, Op::N).view({steps, batch, features});
  if (output_mask[1]) grads[1] = dh;
  if (output_mask[2]) grads[2] = dc;
  if (output_mask[3]) grads[3] = matmul(flat, Op::T, x.view({steps * batch, features}), Op::N);
  if (output_mask[4]) {
    grads[4] = recurrent_weight_grad(d_gates, 0, 4 * hidden, out, h0, reverse,
                                     zero ? mask : Tensor());
  }
  if (output_mask[5] || output_mask[6]) {
    const Tensor db = threads::sum_rows(flat);
    if (output_mask[5]) grads[5] = db;
    if (output_mask[6]) grads[6] = output_mask[5] ? db.clone() : db;
  }
  return grads;
}

// The operator rnnkit::lstm (see cell.h). Forward tensors: x, h0, c0, w_ih, w_hh, b_ih, b_hh,
// mask; flags: reverse, zero_padding, train. Returns (out, h_n, c_n, gates (activated i, f, g,
// o), c_all).
Tensors lstm_forward_entry(const Tensors& t, const Flags& f) {
  return as_vector(
      lstm_forward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], f[0], f[1], f[2]));
}
// tensors: grad_out, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, out, gates, c_all,
// mask
Tensors lstm_backward_entry(const Tensors& t, const Flags& f, const Flags& needs) {
  return as_vector(lstm_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[10], t[11],
                                 t[12], t[13], f[0], f[1], as_array<7>(needs)));
}

}  // namespace rnnkit

RNNKIT_CELL(lstm, rnnkit::lstm_forward_entry, rnnkit::lstm_backward_entry)
