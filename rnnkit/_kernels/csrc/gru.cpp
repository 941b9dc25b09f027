// GRU recurrence (PyTorch's formulation), compiled.
//
// With gi = x W_ih^T + b_ih for all steps (one matrix product) and gh = h W_hh^T + b_hh:
//     r = sigmoid(gi_r + gh_r);  z = sigmoid(gi_z + gh_z)
//     n = tanh(gi_n + r * gh_n);  h' = n + z * (h - n)
// Each step is one small matrix product and one pass over the B*H elements. The forward pass
// overwrites gi in place with (r, z, n) and keeps gh_n, which is all the backward pass needs.
// The backward pass's elementwise gate gradients are one fused pass per step.
#include "cell.h"
#include "common.h"
#include "fused_loops.h"

namespace rnnkit {
namespace {

// gates (T, B, 3H) holds gi on entry and (r, z, n) on return; out (T, B, H) the states;
// hn_all (T, B, H), when not null, receives gh_n of every step.
template <typename T>
void forward_loop(T* gates, T* out, T* hn_all, const T* h0, const T* w_hh, const T* b_hh,
                  const bool* mask, int64_t steps, int64_t batch, int64_t hidden, bool reverse,
                  bool zero) {
  if constexpr (std::is_same_v<T, float>) {  // dense float32: the fused micro-kernel steps
    if (fused::takes<T>(mask)) {
      return fused::gru_forward(gates, out, hn_all, h0, w_hh, b_hh, steps, batch, hidden,
                                reverse);
    }
  }
  const int64_t width = 3 * hidden;
  const double flops = 2.0 * steps * batch * width * hidden;
  over_batch(batch, flops, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<T> gh_buffer(rows * width);
    T* gh = gh_buffer.data();  // (rows, 3H)
    const T* h = h0 + b0 * hidden;
    T* previous = nullptr;       // the previous step's output rows, once h points at them
    const bool* held = nullptr;  // and that step's mask
    const PackedRight<T> recurrent(Op::T, rows, width, hidden, w_hh, hidden);  // @ W_hh^T
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s;
      recurrent.multiply(h, hidden, T(0), gh, width);
      T* o = at_step(out, t, batch, b0, hidden);
      for (int64_t i = 0; i < rows; ++i) {
        T* g = at_step(gates, t, batch, b0 + i, width);
        const T* a = gh + i * width;
        const T* hp = h + i * hidden;
        T* oi = o + i * hidden;
        T* hn_out = hn_all == nullptr ? nullptr : at_step(hn_all, t, batch, b0 + i, hidden);
        if (mask != nullptr && !mask[t * batch + b0 + i]) {
          std::copy(hp, hp + hidden, oi);  // held
          if (hn_out != nullptr) std::fill(hn_out, hn_out + hidden, T(0));
          continue;
        }
        // The gate slices of a row sit at offsets GCC cannot prove disjoint; without this the
        // loop stays scalar (measured on the LSTM's loop of the same layout: half the speed of
        // a small step).
#pragma omp simd
        for (int64_t j = 0; j < hidden; ++j) {
          const T r = sigmoid(g[j] + a[j] + b_hh[j]);
          const T z = sigmoid(g[hidden + j] + a[hidden + j] + b_hh[hidden + j]);
          const T hn = a[2 * hidden + j] + b_hh[2 * hidden + j];
          const T n = tanh_(g[2 * hidden + j] + r * hn);
          g[j] = r;
          g[hidden + j] = z;
          g[2 * hidden + j] = n;
          oi[j] = n + z * (hp[j] - n);
        }
        if (hn_out != nullptr) {
          for (int64_t j = 0; j < hidden; ++j) hn_out[j] = a[2 * hidden + j] + b_hh[2 * hidden + j];
        }
      }
      if (mask != nullptr) {  // zero padding: the previous step's held rows have been read
        if (zero && held != nullptr) zero_rows(previous, held, rows, hidden);
        held = mask + t * batch + b0;
      }
      h = previous = o;
    }
    if (zero && held != nullptr) zero_rows(previous, held, rows, hidden);
  });
}

// dh enters as d h_n and leaves as d h0. d_gi (T, B, 3H) receives the gradient of gi; d_ghn
// (T, B, H) that of gh_n (the r and z parts of d gh equal those of d gi). With `zero` the
// outputs at masked steps were constants (their gradients are not passed on) and a step after
// masked ones finds its held previous state through held_sources.
template <typename T>
void backward_loop(const T* d_out, T* dh, const T* out, const T* h0, const T* gates,
                   const T* hn_all, const T* w_hh, const bool* mask, T* d_gi, T* d_ghn,
                   int64_t steps, int64_t batch, int64_t hidden, bool reverse, bool zero) {
  if constexpr (std::is_same_v<T, float>) {  // dense float32: the fused micro-kernel steps
    if (fused::takes<T>(mask)) {
      return fused::gru_backward(d_out, dh, out, h0, gates, hn_all, w_hh, d_gi, d_ghn, steps,
                                 batch, hidden, reverse);
    }
  }
  const int64_t width = 3 * hidden;
  const double flops = 2.0 * steps * batch * width * hidden;
  const std::vector<int64_t> sources =
      zero ? held_sources(mask, steps, batch, reverse) : std::vector<int64_t>();
  over_batch(batch, flops, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<T> dgh_buffer(rows * width);
    T* dgh = dgh_buffer.data();  // (rows, 3H): d gh of this step, the left factor of d h
    T* carry = dh + b0 * hidden;   // (rows, H)
    const PackedRight<T> recurrent(Op::N, rows, hidden, width, w_hh, hidden);  // @ W_hh
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? s : steps - 1 - s;
      const T* hp_rows = previous_state(out, h0, t, steps, batch, b0, hidden, reverse);
      for (int64_t i = 0; i < rows; ++i) {
        const T* g = at_step(gates, t, batch, b0 + i, width);
        const T* hn = at_step(hn_all, t, batch, b0 + i, hidden);
        const T* go = at_step(d_out, t, batch, b0 + i, hidden);
        const T* hp = zero ? held_state(sources, out, h0, t, batch, b0 + i, hidden)
                           : hp_rows + i * hidden;
        T* dgi = at_step(d_gi, t, batch, b0 + i, width);
        T* dn = at_step(d_ghn, t, batch, b0 + i, hidden);
        T* dg = dgh + i * width;
        T* c = carry + i * hidden;
        if (mask != nullptr && !mask[t * batch + b0 + i]) {  // held: d h passes through
          if (!zero) {
            for (int64_t j = 0; j < hidden; ++j) c[j] += go[j];
          }
          std::fill(dgi, dgi + width, T(0));
          std::fill(dg, dg + width, T(0));
          std::fill(dn, dn + hidden, T(0));
          continue;
        }
#pragma omp simd  // as in the forward pass
        for (int64_t j = 0; j < hidden; ++j) {
          const T r = g[j], z = g[hidden + j], n = g[2 * hidden + j];
          const T total = c[j] + go[j];
          const T d_an = total * (T(1) - z) * (T(1) - n * n);
          const T d_ar = d_an * hn[j] * r * (T(1) - r);
          const T d_az = total * (hp[j] - n) * z * (T(1) - z);
          dgi[j] = dg[j] = d_ar;
          dgi[hidden + j] = dg[hidden + j] = d_az;
          dgi[2 * hidden + j] = d_an;
          dn[j] = dg[2 * hidden + j] = d_an * r;
          c[j] = total * z;
        }
      }
      recurrent.multiply(dgh, width, T(1), carry, hidden);
    }
  });
}

struct Forward {
  Tensor out, gates, hn_all;
};

Forward run_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                    const Tensor& b_ih, const Tensor& b_hh, const Tensor& mask, bool reverse,
                    bool keep_for_backward, bool zero) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(1);
  Forward f;
  f.out = at::empty({steps, batch, hidden}, x.options());
  const Tensor bias = bias_or_zeros(b_hh, 3 * hidden, x);
  const int64_t chunk = chunk_steps(steps, batch, 3 * hidden);
  if (chunk < steps && x.scalar_type() == at::kFloat &&
      fused::takes<float>(mask.defined() ? mask.data_ptr<bool>() : nullptr)) {
    // training keeps every step's gates and gh_n, each chunk's projected into its own steps
    if (keep_for_backward) {
      f.gates = at::empty({steps, batch, 3 * hidden}, x.options());
      f.hn_all = at::empty({steps, batch, hidden}, x.options());
    }
    const micro::Panel panel = micro::gate_panel(micro::fused_isa(), w_hh.data_ptr<float>(), 3,
                                                 hidden);
    float* out = f.out.data_ptr<float>();
    float* hn_all = keep_for_backward ? f.hn_all.data_ptr<float>() : nullptr;
    const int64_t stride = batch * hidden;  // one step of out
    fused::in_chunks(
        x, w_ih, b_ih, Tensor(), chunk, reverse,
        [&](float* gates, int64_t t0, int64_t n, bool first) {
          // a chunk starts from the state the previous one ended at
          const float* h = first ? h0.data_ptr<float>()
                                 : out + (reverse ? t0 + n : t0 - 1) * stride;
          fused::gru_forward(panel, gates, out + t0 * stride,
                             hn_all ? hn_all + t0 * stride : nullptr, h, bias.data_ptr<float>(),
                             n, batch, hidden, reverse);
        },
        keep_for_backward ? f.gates.data_ptr<float>() : nullptr);
    return f;
  }
  f.gates = project_inputs(x, w_ih, b_ih);  // (T, B, 3H)
  if (keep_for_backward) f.hn_all = at::empty({steps, batch, hidden}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward", [&] {
    forward_loop(f.gates.data_ptr<scalar_t>(), f.out.data_ptr<scalar_t>(),
                 keep_for_backward ? f.hn_all.data_ptr<scalar_t>() : nullptr,
                 h0.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(),
                 mask.defined() ? mask.data_ptr<bool>() : nullptr, steps, batch, hidden,
                 reverse, zero);
  });
  return f;
}

}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor> gru_forward(const Tensor& x_in, const Tensor& h0_in,
                                                       const Tensor& w_ih_in,
                                                       const Tensor& w_hh_in,
                                                       const Tensor& b_ih_in,
                                                       const Tensor& b_hh_in,
                                                       const Tensor& mask_in, bool reverse,
                                                       bool zero, bool train) {
  check_inputs("gru", 3, x_in, {h0_in}, w_ih_in, w_hh_in, b_ih_in, b_hh_in, mask_in);
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor b_ih = contiguous_or_empty(b_ih_in), b_hh = contiguous_or_empty(b_hh_in);
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  Forward f = run_forward(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, train, zero);
  Tensor h_n = last_state(f.out, h0, reverse, zero ? mask : Tensor());
  if (!train) return {f.out, h_n, unused(x), unused(x)};
  return {f.out, h_n, f.gates, f.hn_all};
}

std::array<Tensor, 6> gru_backward(const Tensor& grad_out, const Tensor& grad_h_n,
                                   const Tensor& x_in, const Tensor& h0_in,
                                   const Tensor& w_ih_in, const Tensor& w_hh_in,
                                   const Tensor& out, const Tensor& gates, const Tensor& hn_all,
                                   const Tensor& mask_in, bool reverse, bool zero,
                                   std::array<bool, 6> output_mask) {
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = w_hh.size(1);
  const OutputGrad d_out = output_grad(grad_out);
  Tensor dh = grad_h_n.contiguous().clone();
  Tensor d_gi = at::empty_like(gates);  // (T, B, 3H)
  // (T, B, H): each step's row is written over the d out_t it was formed from, when ours
  Tensor d_ghn = d_out.owned ? d_out.grad : at::empty_like(out);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_backward", [&] {
    backward_loop(d_out.grad.data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(),
                  out.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), gates.data_ptr<scalar_t>(),
                  hn_all.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
                  mask.defined() ? mask.data_ptr<bool>() : nullptr, d_gi.data_ptr<scalar_t>(),
                  d_ghn.data_ptr<scalar_t>(), steps, batch, hidden, reverse, zero);
  });
  const Tensor flat_gi = d_gi.view({steps * batch, 3 * hidden});
  std::array<Tensor, 6> grads;
  grads.fill(unused(x));
  if (output_mask[0]) {
    grads[0] = matmul(flat_gi, Op::N, w_ih, Op::N).view({steps, batch, features});
  }
  if (output_mask[1]) grads[1] = dh;
  if (output_mask[2]) grads[2] = matmul(flat_gi, Op::T, x.view({steps * batch, features}), Op::N);
  if (output_mask[3]) {
    const Tensor zero_mask = zero ? mask : Tensor();
    grads[3] = at::cat({recurrent_weight_grad(d_gi, 0, 2 * hidden, out, h0, reverse, zero_mask),
                        recurrent_weight_grad(d_ghn, 0, hidden, out, h0, reverse, zero_mask)});
  }
  if (output_mask[4]) grads[4] = threads::sum_rows(flat_gi);
  if (output_mask[5]) {
    grads[5] = at::cat({threads::sum_rows(flat_gi.narrow(1, 0, 2 * hidden)),
                        threads::sum_rows(d_ghn.view({steps * batch, hidden}))});
  }
  return grads;
}

// The operator rnnkit::gru (see cell.h). Forward tensors: x, h0, w_ih, w_hh, b_ih, b_hh, mask;
// flags: reverse, zero_padding, train. Returns (out, h_n, gates (r, z, n), hn_all = gh_n).
Tensors gru_forward_entry(const Tensors& t, const Flags& f) {
  return as_vector(gru_forward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], f[0], f[1], f[2]));
}
// tensors: grad_out, grad_h_n, x, h0, w_ih, w_hh, b_ih, b_hh, out, gates, hn_all, mask
Tensors gru_backward_entry(const Tensors& t, const Flags& f, const Flags& needs) {
  return as_vector(gru_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[8], t[9], t[10], t[11],
                                f[0], f[1], as_array<6>(needs)));
}

}  // namespace rnnkit

RNNKIT_CELL(gru, rnnkit::gru_forward_entry, rnnkit::gru_backward_entry)
