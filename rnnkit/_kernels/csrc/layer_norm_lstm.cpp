// Layer-normalised LSTM recurrence (Ba, Kiros & Hinton 2016; rnnkit/_kernels/lstm_variants.py
// states the formulation), compiled on loop.h's library path: its step normalises rows (a
// reduction over each row's 4H recurrent projections and over its H cell values), which the
// micro-kernel's epilogue, a tile of units at a time, does not see whole.
//
// With ni = LN(x W_ih^T; g_x, s_x) + b_ih for all steps (one matrix product and one norm),
// per step:
//     a = ni + LN(h W_hh^T; g_h, s_h) + b_hh;  i, f, g, o = sigmoid, sigmoid, tanh, sigmoid
//     c' = f * c + i * g;  h' = o * tanh(LN(c'; g_c, s_c))
// with LN(v; g, s) = g (v - mean v) / sqrt(var v + 1e-5) + s over the row (lstm_variants'
// LN_EPS). Buffers: gates (T, B, 4H) holds ni on entry and the activated (i, f, g, o) on
// return; hw_all (T, B, 4H) each step's h W_hh^T (training; else a per-thread scratch), from
// which the backward pass recomputes the norm's statistics; c_all (T, B, H) every step's c'.
//
// Backward, per row: d c' through the output norm's backward, the LSTM's gate gradients dA
// (d_gates: the gradient of ni and of the recurrent norm's output), then the recurrent norm's
// backward d(h W_hh^T) (d_rec: the left factor of the step's product). The gains' and
// shifts' gradients, and the input side's backward, are ATen's layer-norm backward over all
// steps at once after the loop.
#include <ATen/ops/native_layer_norm.h>
#include <ATen/ops/native_layer_norm_backward.h>
#include <ATen/ops/ones.h>

#include "cell.h"
#include "common.h"
#include "loop.h"

#include <cmath>

namespace rnnkit {
namespace {

constexpr double kLayerNormEps = 1e-5;  // lstm_variants.LN_EPS

// mean and 1 / sqrt(var + eps) of v (n)
template <typename T>
inline void row_moments(const T* v, int64_t n, T& mean, T& rstd) {
  T sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += v[j];
  mean = sum / T(n);
  T square = 0;
  for (int64_t j = 0; j < n; ++j) square += (v[j] - mean) * (v[j] - mean);
  rstd = T(1) / std::sqrt(square / T(n) + T(kLayerNormEps));
}

// The layer-normalised LSTM for loop.h (library path only). Its own pointers: the recurrent
// norm's gain g_h (4H) and shift s_h + b_hh (4H), the output norm's g_c, s_c (H).
struct LayerNormLstm {
  static constexpr int kGates = 4;
  static constexpr const char* kName = "layer_norm_lstm";
  static constexpr bool kHiddenBiasInProjection = false;  // b_hh follows the recurrent norm
  static constexpr bool kAccumulate = false;  // the norm reads h W_hh^T alone
  static constexpr bool kHeldSources = false;  // the backward rows never read h_{t-1}
  static constexpr bool kFused = false;

  template <typename T>
  struct Forward {
    T* out;
    const T* h0;
    const T* w_hh;
    const T* c0;
    T* gates;   // (T, B, 4H): ni on entry
    T* hw_all;  // (T, B, 4H), or null (inference)
    T* c_all;   // (T, B, H), or null (inference)
    T* c_n;
    const T *gain_h, *shift_h, *gain_c, *shift_c;

    class Rows {
     public:
      Rows(const Forward& f, const Pass& p, int64_t b0, int64_t rows, bool)
          : f_(f), p_(p), b0_(b0), rows_(rows),
            c_buffer_(f.c_all == nullptr ? 2 * rows * p.hidden : 0),
            hw_buffer_(f.hw_all == nullptr ? rows * 4 * p.hidden : 0),
            c_(f.c0 + b0 * p.hidden) {}
      void begin(int64_t s, int64_t t) {
        c_new_ = f_.c_all == nullptr ? c_buffer_.data() + (s % 2) * rows_ * p_.hidden
                                     : at_step(f_.c_all, t, p_.batch, b0_, p_.hidden);
      }
      T* product(int64_t t) {
        return f_.hw_all == nullptr ? hw_buffer_.data()
                                    : at_step(f_.hw_all, t, p_.batch, b0_, 4 * p_.hidden);
      }
      void row(int64_t t, int64_t i, const T*, T* hr) {
        const int64_t hidden = p_.hidden, width = 4 * hidden;
        T* ar = at_step(f_.gates, t, p_.batch, b0_ + i, width);
        const T* q = product(t) + i * width;
        T mean, rstd;
        row_moments(q, width, mean, rstd);
        for (int64_t k = 0; k < width; ++k) {
          ar[k] += f_.gain_h[k] * (q[k] - mean) * rstd + f_.shift_h[k];
        }
        const T* cp = c_ + i * hidden;
        T* cr = c_new_ + i * hidden;
        for (int64_t j = 0; j < hidden; ++j) {
          const T ig = sigmoid(ar[j]);
          const T fg = sigmoid(ar[hidden + j]);
          const T gg = tanh_(ar[2 * hidden + j]);
          ar[j] = ig;
          ar[hidden + j] = fg;
          ar[2 * hidden + j] = gg;
          ar[3 * hidden + j] = sigmoid(ar[3 * hidden + j]);
          cr[j] = fg * cp[j] + ig * gg;
        }
        row_moments(cr, hidden, mean, rstd);
        for (int64_t j = 0; j < hidden; ++j) {
          const T normed = f_.gain_c[j] * (cr[j] - mean) * rstd + f_.shift_c[j];
          hr[j] = ar[3 * hidden + j] * tanh_(normed);
        }
      }
      void hold(int64_t, int64_t i, const T* hp, T* hr) const {
        const T* cp = c_ + i * p_.hidden;
        std::copy(cp, cp + p_.hidden, c_new_ + i * p_.hidden);
        std::copy(hp, hp + p_.hidden, hr);
      }
      void end(const T*, T*, const bool*) { c_ = c_new_; }
      void finish() const { std::copy(c_, c_ + rows_ * p_.hidden, f_.c_n + b0_ * p_.hidden); }

     private:
      const Forward& f_;
      const Pass& p_;
      int64_t b0_, rows_;
      std::vector<T> c_buffer_, hw_buffer_;
      const T* c_;
      T* c_new_ = nullptr;
    };
  };

  // dh, dc enter as d h_n, d c_n and leave as d h0, d c0.
  template <typename T>
  struct Backward {
    StridedRows<T> d_out;
    T* dh;
    const T* w_hh;
    T* dc;
    const T* c_all;
    const T* c0;
    const T* gates;   // activated
    const T* hw_all;  // h W_hh^T
    T* d_gates;       // (T, B, 4H): dA
    T* d_rec;         // (T, B, 4H): d (h W_hh^T)
    T* d_normed_c;    // (T, B, H): d LN(c'), for the output norm's gain and shift
    const T *gain_h, *gain_c, *shift_c;

    class Rows {
     public:
      Rows(const Backward& b, const Pass& p, const std::vector<int64_t>&, int64_t b0, int64_t,
           bool)
          : b_(b), p_(p), b0_(b0), carry_c_(b.dc + b0 * p.hidden), scratch_(p.hidden),
            normed_(p.hidden), d_normed_(p.hidden) {}
      void begin(int64_t t) {
        cp_rows_ = previous_state(b_.c_all, b_.c0, t, p_.steps, p_.batch, b0_, p_.hidden,
                                  p_.reverse);
      }
      const T* go(int64_t t, int64_t i) {
        return b_.d_out.row(t, b0_ + i, scratch_.data(), p_.hidden);
      }
      void hold(int64_t t, int64_t i) const {
        const int64_t hidden = p_.hidden;
        for (T* d : {at_step(b_.d_gates, t, p_.batch, b0_ + i, 4 * hidden),
                     at_step(b_.d_rec, t, p_.batch, b0_ + i, 4 * hidden)}) {
          std::fill(d, d + 4 * hidden, T(0));
        }
        T* dn = at_step(b_.d_normed_c, t, p_.batch, b0_ + i, hidden);
        std::fill(dn, dn + hidden, T(0));
      }
      void row(int64_t t, int64_t i, T* gh) {  // gh: d h_t in, zero out (d h_{t-1} adds on)
        const int64_t hidden = p_.hidden, width = 4 * hidden;
        const T* g = at_step(b_.gates, t, p_.batch, b0_ + i, width);
        const T* ct = at_step(b_.c_all, t, p_.batch, b0_ + i, hidden);
        const T* go = this->go(t, i);
        const T* cp = cp_rows_ + i * hidden;
        T* dar = at_step(b_.d_gates, t, p_.batch, b0_ + i, width);
        T* dnc = at_step(b_.d_normed_c, t, p_.batch, b0_ + i, hidden);
        T* gc = carry_c_ + i * hidden;
        // the output norm: d o~, d LN(c'), then d c' through the norm
        T mean, rstd, sum = 0, dot = 0;
        row_moments(ct, hidden, mean, rstd);
        for (int64_t j = 0; j < hidden; ++j) {
          const T og = g[3 * hidden + j];
          const T n = (ct[j] - mean) * rstd;
          const T tn = tanh_(b_.gain_c[j] * n + b_.shift_c[j]);
          const T total = gh[j] + go[j];
          dar[3 * hidden + j] = total * tn * og * (T(1) - og);
          dnc[j] = total * og * (T(1) - tn * tn);
          normed_[j] = n;
          d_normed_[j] = dnc[j] * b_.gain_c[j];
          sum += d_normed_[j];
          dot += d_normed_[j] * n;
          gh[j] = T(0);
        }
        sum /= T(hidden);
        dot /= T(hidden);
        for (int64_t j = 0; j < hidden; ++j) {
          const T ig = g[j], fg = g[hidden + j], gg = g[2 * hidden + j];
          const T dct = gc[j] + rstd * (d_normed_[j] - sum - normed_[j] * dot);
          dar[j] = dct * gg * ig * (T(1) - ig);
          dar[hidden + j] = dct * cp[j] * fg * (T(1) - fg);
          dar[2 * hidden + j] = dct * ig * (T(1) - gg * gg);
          gc[j] = dct * fg;
        }
        // the recurrent norm's backward: d (h W_hh^T) from dA
        const T* q = at_step(b_.hw_all, t, p_.batch, b0_ + i, width);
        T* dq = at_step(b_.d_rec, t, p_.batch, b0_ + i, width);
        row_moments(q, width, mean, rstd);
        sum = dot = 0;
        for (int64_t k = 0; k < width; ++k) {
          const T dn = dar[k] * b_.gain_h[k];
          sum += dn;
          dot += dn * (q[k] - mean) * rstd;
        }
        sum /= T(width);
        dot /= T(width);
        for (int64_t k = 0; k < width; ++k) {
          const T n = (q[k] - mean) * rstd;
          dq[k] = rstd * (dar[k] * b_.gain_h[k] - sum - n * dot);
        }
      }
      void end(int64_t, const bool*) {}
      const T* left(int64_t t) const {
        return at_step(b_.d_rec, t, p_.batch, b0_, 4 * p_.hidden);
      }
      T beta() const { return T(1); }

     private:
      const Backward& b_;
      const Pass& p_;
      int64_t b0_;
      T* carry_c_;              // (rows, H): d c, carried back through time
      std::vector<T> scratch_;  // a strided d_out row, gathered
      std::vector<T> normed_, d_normed_;  // one row's normalised c' and its gradient
      const T* cp_rows_ = nullptr;
    };
  };
};

// A norm's gain (ones where absent) or shift (zeros), checked against its width.
Tensor norm_weight(const Tensor& w, int64_t width, bool gain, const char* name, const Tensor& x) {
  if (!w.defined()) {
    return gain ? at::ones({width}, x.options()) : at::zeros({width}, x.options());
  }
  TORCH_CHECK(w.dim() == 1 && w.size(0) == width, "layer_norm_lstm: ", name,
              " must have shape (", width, ",), got ", w.sizes());
  TORCH_CHECK(w.device().is_cpu() && w.scalar_type() == x.scalar_type(), "layer_norm_lstm: ",
              name, " must be a CPU tensor of x's dtype ", x.scalar_type(), ", got ",
              w.scalar_type(), " on ", w.device());
  return w.contiguous();
}

// The six gains and shifts: ln_ih (4H), ln_hh (4H), ln_c (H).
std::array<Tensor, 6> norm_weights(const Tensor* given, int64_t hidden, const Tensor& x) {
  static const char* names[] = {"ln_ih_weight", "ln_ih_bias", "ln_hh_weight", "ln_hh_bias",
                                "ln_c_weight", "ln_c_bias"};
  std::array<Tensor, 6> out;
  for (int k = 0; k < 6; ++k) {
    out[k] = norm_weight(given[k], k < 4 ? 4 * hidden : hidden, k % 2 == 0, names[k], x);
  }
  return out;
}

// x W_ih^T (T, B, 4H) and its norm's statistics: (projection, normalised + s_x, mean, rstd)
std::tuple<Tensor, Tensor, Tensor, Tensor> input_side(const Tensor& x, const Tensor& w_ih,
                                                      const Tensor& gain, const Tensor& shift) {
  const int64_t steps = x.size(0), batch = x.size(1), width = w_ih.size(0);
  const Tensor xw = matmul(x.view({steps * batch, x.size(2)}), Op::N, w_ih, Op::T)
                        .view({steps, batch, width});
  auto [normed, mean, rstd] = at::native_layer_norm(xw, {width}, gain, shift, kLayerNormEps);
  return {xw, normed, mean, rstd};
}

}  // namespace

std::array<Tensor, 6> layer_norm_lstm_forward(const Tensors& t, bool reverse, bool zero,
                                              bool train) {
  const Tensor &x_in = t[0], &h0_in = t[1], &c0_in = t[2], &w_ih_in = t[3], &w_hh_in = t[4];
  const Tensor &b_ih = t[5], &b_hh = t[6], &mask_in = t[13];
  check_inputs("layer_norm_lstm", 4, x_in, {h0_in, c0_in}, w_ih_in, w_hh_in, b_ih, b_hh,
               mask_in);
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor mask = contiguous_or_empty(mask_in);
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(0) / 4;
  const auto ln = norm_weights(&t[7], hidden, x);
  // no fused steps: the state width given, so the pass is not fusable
  const Pass pass = make_pass(x, hidden, mask, reverse, zero, hidden);
  Tensor gates = std::get<1>(input_side(x, w_ih, ln[0], ln[1]));  // (T, B, 4H)
  if (b_ih.defined()) gates.add_(b_ih);
  const Tensor shift_h = b_hh.defined() ? ln[3].add(b_hh) : ln[3];
  Tensor out = at::empty({steps, batch, hidden}, x.options());
  Tensor c_n = at::empty({batch, hidden}, x.options());
  Tensor hw_all, c_all;
  if (train) {
    hw_all = at::empty({steps, batch, 4 * hidden}, x.options());
    c_all = at::empty({steps, batch, hidden}, x.options());
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "layer_norm_lstm", [&] {
    forward_loop<LayerNormLstm, scalar_t>(
        {out.data_ptr<scalar_t>(), h0.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
         c0.data_ptr<scalar_t>(), gates.data_ptr<scalar_t>(), data_or_null<scalar_t>(hw_all),
         data_or_null<scalar_t>(c_all), c_n.data_ptr<scalar_t>(), ln[2].data_ptr<scalar_t>(),
         shift_h.data_ptr<scalar_t>(), ln[4].data_ptr<scalar_t>(), ln[5].data_ptr<scalar_t>()},
        pass);
  });
  Tensor h_n = last_state(out, h0, reverse, pass.zero ? mask : Tensor());
  if (!train) return {out, h_n, c_n, unused(x), unused(x), unused(x)};
  return {out, h_n, c_n, gates, hw_all, c_all};
}

std::array<Tensor, 13> layer_norm_lstm_backward(const Tensors& t, bool reverse, bool zero,
                                                std::array<bool, 13> output_mask) {
  const Tensor &grad_out = t[0], &grad_h_n = t[1], &grad_c_n = t[2];
  const Tensor x = t[3].contiguous(), h0 = t[4].contiguous(), c0 = t[5].contiguous();
  const Tensor w_ih = t[6].contiguous(), w_hh = t[7].contiguous();
  const Tensor &out = t[16], &gates = t[17], &hw_all = t[18], &c_all = t[19];
  const Tensor mask = contiguous_or_empty(t[20]);
  zero = zero && mask.defined();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = w_hh.size(0) / 4;
  const auto ln = norm_weights(&t[10], hidden, x);
  Tensor dh = grad_h_n.contiguous().clone();
  Tensor dc = grad_c_n.contiguous().clone();
  Tensor d_gates = at::empty_like(gates), d_rec = at::empty_like(gates);  // (T, B, 4H)
  Tensor d_normed_c = at::empty_like(c_all);                              // (T, B, H)
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "layer_norm_lstm_backward", [&] {
    backward_loop<LayerNormLstm, scalar_t>(
        {StridedRows<scalar_t>(grad_out), dh.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
         dc.data_ptr<scalar_t>(), c_all.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(),
         gates.data_ptr<scalar_t>(), hw_all.data_ptr<scalar_t>(), d_gates.data_ptr<scalar_t>(),
         d_rec.data_ptr<scalar_t>(), d_normed_c.data_ptr<scalar_t>(),
         ln[2].data_ptr<scalar_t>(), ln[4].data_ptr<scalar_t>(), ln[5].data_ptr<scalar_t>()},
        make_pass(x, hidden, mask, reverse, zero, hidden));
  });
  std::array<Tensor, 13> grads;
  grads.fill(unused(x));
  const Tensor flat = d_gates.view({steps * batch, 4 * hidden});
  if (output_mask[1]) grads[1] = dh;
  if (output_mask[2]) grads[2] = dc;
  if (output_mask[4]) {
    grads[4] = recurrent_weight_grad(d_rec, 0, 4 * hidden, out, h0, reverse,
                                     zero ? mask : Tensor());
  }
  if (output_mask[5] || output_mask[6]) {
    const Tensor db = threads::sum_rows(flat);
    if (output_mask[5]) grads[5] = db;
    if (output_mask[6]) grads[6] = output_mask[5] ? db.clone() : db;
  }
  // the input side: d (x W_ih^T) through its norm, then x's and W_ih's gradients
  const bool input_weights = output_mask[7] || output_mask[8];
  if (output_mask[0] || output_mask[3] || input_weights) {
    const auto [xw, normed, mean, rstd] = input_side(x, w_ih, ln[0], ln[1]);
    auto [d_xw, d_gain, d_shift] = at::native_layer_norm_backward(
        d_gates, xw, {4 * hidden}, mean, rstd, ln[0], ln[1],
        {output_mask[0] || output_mask[3], output_mask[7], output_mask[8]});
    if (output_mask[0] || output_mask[3]) {
      const Tensor d_flat = d_xw.contiguous().view({steps * batch, 4 * hidden});
      if (output_mask[0]) {
        grads[0] = matmul(d_flat, Op::N, w_ih, Op::N).view({steps, batch, features});
      }
      if (output_mask[3]) {
        grads[3] = matmul(d_flat, Op::T, x.view({steps * batch, features}), Op::N);
      }
    }
    if (output_mask[7]) grads[7] = d_gain;
    if (output_mask[8]) grads[8] = d_shift;
  }
  // the recurrent norm's gain and shift from dA, the output norm's from d LN(c')
  for (const auto& [k, d, input, width] :
       {std::make_tuple(9, d_gates, hw_all, 4 * hidden),
        std::make_tuple(11, d_normed_c, c_all, hidden)}) {
    if (!output_mask[k] && !output_mask[k + 1]) continue;
    auto [normed, mean, rstd] =
        at::native_layer_norm(input, {width}, ln[k - 7], ln[k - 6], kLayerNormEps);
    auto [unused_input, d_gain, d_shift] = at::native_layer_norm_backward(
        d, input, {width}, mean, rstd, ln[k - 7], ln[k - 6], {false, output_mask[k],
                                                               output_mask[k + 1]});
    if (output_mask[k]) grads[k] = d_gain;
    if (output_mask[k + 1]) grads[k + 1] = d_shift;
  }
  return grads;
}

// The operator rnnkit::layer_norm_lstm (see cell.h). Forward tensors: x, h0, c0, w_ih, w_hh,
// b_ih, b_hh, ln_ih_weight, ln_ih_bias, ln_hh_weight, ln_hh_bias, ln_c_weight, ln_c_bias, mask;
// flags: reverse, zero_padding, train. Returns (out, h_n, c_n, gates (activated i, f, g, o),
// hw_all, c_all).
Tensors layer_norm_lstm_forward_entry(const Tensors& t, const Flags& f) {
  return as_vector(layer_norm_lstm_forward(t, f[0], f[1], f[2]));
}
// tensors: grad_out, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, the six norm
// weights, out, gates, hw_all, c_all, mask
Tensors layer_norm_lstm_backward_entry(const Tensors& t, const Flags& f, const Flags& needs) {
  return as_vector(layer_norm_lstm_backward(t, f[0], f[1], as_array<13>(needs)));
}

}  // namespace rnnkit

RNNKIT_CELL(layer_norm_lstm, rnnkit::layer_norm_lstm_forward_entry,
            rnnkit::layer_norm_lstm_backward_entry)
