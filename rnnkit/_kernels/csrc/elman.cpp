// Elman recurrence, compiled: h_t = act(x_t W_ih^T + b_ih + b_hh + h_{t-1} W_hh^T).
//
// The cell's traits for the time loop (loop.h) and its operator's entry points. Forward: the
// input projection of all steps is written straight into the output buffer (T, B, H); each
// step then adds h_{t-1} W_hh^T onto its slice (one small matrix product) and applies the
// activation in place (dense float32 passes with narrow inputs: stacked steps, loop.h, the
// projection inside each step's product). Backward: one loop back over time forms d pre_t for every step, and
// every weight gradient is one matrix product after the loop.
#include "cell.h"
#include "common.h"
#include "loop.h"

namespace rnnkit {
namespace {

// The Elman cell for loop.h. Its one "gate" is the pre-activation, formed in the output buffer
// itself: out (T, B, H) holds the input projections (with both biases) on entry and the states
// on return; the backward pass's per-step gradient is d pre_t (T, B, H). `relu` picks the
// activation (else tanh); act' is read off the state h itself.
struct Elman {
  static constexpr int kGates = 1;
  static constexpr const char* kName = "elman";
  static constexpr bool kHiddenBiasInProjection = true;
  static constexpr bool kAccumulate = true;
  static constexpr bool kHeldSources = false;

  static micro::Panel forward_panel(micro::Isa isa, const float* w_hh, int64_t hidden) {
    return micro::elman_forward_panel(isa, w_hh, hidden);
  }
  // stacked steps (loop.h's fused::stacked): the bias b_ih + b_hh
  static constexpr bool kStacked = true;
  static micro::Panel stacked_panel(micro::Isa isa, const float* w_ih, int64_t features,
                                    const float* w_hh, int64_t hidden) {
    return micro::stacked_unit_panel(isa, w_ih, features, w_hh, hidden);
  }
  static micro::Panel stacked_bias(micro::Isa isa, const Tensor& b_ih, const Tensor& b_hh,
                                   int64_t hidden) {
    std::vector<float> row = summed_bias(b_ih, b_hh, hidden);
    row.resize(hidden, 0.0f);  // no bias: zeros
    return micro::stacked_unit_bias(isa, row, hidden);
  }

  Tensor h0, w_hh;
  bool relu;
  Tensor out;

  // the projections become the outputs: the chunks project straight into them
  float* allocate(const Tensor& x, const Pass& p, bool, const Tensor& projected) {
    if (projected.defined()) {
      out = projected;
      return nullptr;
    }
    out = at::empty({p.steps, p.batch, p.hidden}, x.options());
    return out.data_ptr<float>();
  }

  template <typename T>
  struct Forward {
    T* out;
    const T* h0;
    const T* w_hh;
    bool relu;
    // stacked steps (float32, loop.h's fused::stacked): x (T, B, features), the bias panel
    const T* x = nullptr;
    int64_t features = 0;
    const micro::Panel* bias = nullptr;

    Forward chunk(T* gates, int64_t, const T* h, bool) const {
      Forward c = *this;
      c.out = gates;  // the chunk's steps of out, where it was projected
      c.h0 = h;
      return c;
    }

    class Rows {
     public:
      Rows(const Forward& f, const Pass& p, int64_t b0, int64_t rows, bool)
          : f_(f), p_(p), b0_(b0), rows_(rows) {}
      void begin(int64_t, int64_t) {}
      T* product(int64_t t) const { return at_step(f_.out, t, p_.batch, b0_, p_.hidden); }
      void row(int64_t, int64_t, const T*, T* o) const {  // o: pre on entry, h' on return
        if (f_.relu) {
          for (int64_t k = 0; k < p_.hidden; ++k) o[k] = o[k] > T(0) ? o[k] : T(0);
        } else {
          for (int64_t k = 0; k < p_.hidden; ++k) o[k] = tanh_(o[k]);
        }
      }
      void hold(int64_t, int64_t, const T* h, T* o) const { std::copy(h, h + p_.hidden, o); }
      void end(const T*, T*, const bool*) {}
      void finish() {}
      void fused(micro::Isa isa, const micro::Panel& w, int64_t t, const float* h, float* o) const {
        if (f_.x != nullptr) {
          micro::elman_forward_stacked(isa, w, *f_.bias,
                                       at_step(f_.x, t, p_.batch, b0_, f_.features), f_.features,
                                       h, o, rows_, p_.hidden, f_.relu);
          return;
        }
        micro::elman_forward_step(isa, w, h, o, rows_, p_.hidden, f_.relu);
      }

     private:
      const Forward& f_;
      const Pass& p_;
      int64_t b0_, rows_;
    };
  };

  template <typename T>
  Forward<T> forward() const {
    return {out.data_ptr<T>(), h0.data_ptr<T>(), w_hh.data_ptr<T>(), relu};
  }

  // d_pre may be d_out itself (an output gradient the backward pass owns): each row is read
  // before it is written.
  template <typename T>
  struct Backward {
    const T* d_out;
    T* dh;
    const T* out;
    const T* w_hh;
    T* d_pre;
    bool relu;

    class Rows {
     public:
      Rows(const Backward& b, const Pass& p, const std::vector<int64_t>&, int64_t b0,
           int64_t rows, bool)
          : b_(b), p_(p), b0_(b0), rows_(rows), masked_(p.mask != nullptr) {}
      void begin(int64_t) {}
      const T* go(int64_t t, int64_t i) const {
        return at_step(b_.d_out, t, p_.batch, b0_ + i, p_.hidden);
      }
      void hold(int64_t t, int64_t i) const {
        T* dp = at_step(b_.d_pre, t, p_.batch, b0_ + i, p_.hidden);
        std::fill(dp, dp + p_.hidden, T(0));
      }
      void row(int64_t t, int64_t i, T* g) const {  // g: d h_t in, what d h_{t-1} adds to out
        const int64_t hidden = p_.hidden;
        const T* h = at_step(b_.out, t, p_.batch, b0_ + i, hidden);
        const T* go = this->go(t, i);
        T* dp = at_step(b_.d_pre, t, p_.batch, b0_ + i, hidden);
#pragma omp simd  // dp may be go itself: same index
        for (int64_t k = 0; k < hidden; ++k) {
          const T slope = b_.relu ? (h[k] > T(0) ? T(1) : T(0)) : T(1) - h[k] * h[k];
          dp[k] = (g[k] + go[k]) * slope;
        }
        if (masked_) std::fill(g, g + hidden, T(0));  // held rows keep theirs: added onto
      }
      void end(int64_t, const bool*) {}
      const T* left(int64_t t) const { return at_step(b_.d_pre, t, p_.batch, b0_, p_.hidden); }
      T beta() const { return masked_ ? T(1) : T(0); }

      micro::ElmanBackStep describe(int64_t, int64_t t) const {
        return {at_step(b_.out, t, p_.batch, b0_, p_.hidden),
                at_step(b_.d_out, t, p_.batch, b0_, p_.hidden),
                at_step(b_.d_pre, t, p_.batch, b0_, p_.hidden)};
      }
      void first(micro::Isa isa, int64_t t, float* carry) const {
        micro::elman_backward_first(isa, describe(0, t), carry, rows_, p_.hidden, b_.relu);
      }
      void step(micro::Isa isa, const micro::Panel& w, int64_t, int64_t t,
                const micro::ElmanBackStep* next, float* carry) const {
        micro::elman_backward_step(isa, w, left(t), next, carry, rows_, p_.hidden, b_.relu);
      }

     private:
      const Backward& b_;
      const Pass& p_;
      int64_t b0_, rows_;
      bool masked_;
    };
  };
};

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
  const Pass pass = make_pass(x, w_hh.size(0), mask, reverse, zero);
  Elman cell{h0, w_hh, relu, Tensor()};
  run_forward(cell, x, w_ih, b_ih, b_hh, pass, false);
  return {cell.out, last_state(cell.out, h0, reverse, pass.zero ? mask : Tensor())};
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
    backward_loop<Elman, scalar_t>(
        {d_out.grad.data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
         w_hh.data_ptr<scalar_t>(), d_pre.data_ptr<scalar_t>(), relu},
        make_pass(x, hidden, mask, reverse, zero));
  });
  const Tensor flat = d_pre.view({steps * batch, hidden});
  std::array<Tensor, 6> grads;
  grads.fill(unused(x));
  if (output_mask[0]) grads[0] = matmul(flat, Op::N, w_ih, Op::N).view({steps, batch, features});
  if (output_mask[1]) grads[1] = dh;
  // the weight and bias gradients in one pass over d_pre where weight_grads runs
  Tensor dw_ih, dw_hh, db;
  if (x.scalar_type() == at::kFloat && !zero &&
      (output_mask[2] || output_mask[3] || output_mask[4] || output_mask[5])) {
    dw_ih = output_mask[2] ? at::empty({hidden, features}, x.options()) : Tensor();
    dw_hh = output_mask[3] ? at::empty({hidden, hidden}, x.options()) : Tensor();
    db = output_mask[4] || output_mask[5] ? at::empty({hidden}, x.options()) : Tensor();
    if (!weight_grads(d_pre.data_ptr<float>(), hidden, hidden, steps, batch,
                      x.data_ptr<float>(), features, data_or_null<float>(dw_ih),
                      out.data_ptr<float>(), h0.data_ptr<float>(), hidden, reverse, hidden,
                      data_or_null<float>(dw_hh), data_or_null<float>(db))) {
      dw_ih = dw_hh = db = Tensor();
    }
  }
  if (output_mask[2]) {
    grads[2] = dw_ih.defined() ? dw_ih
                               : matmul(flat, Op::T, x.view({steps * batch, features}), Op::N);
  }
  if (output_mask[3]) {
    grads[3] = dw_hh.defined()
                   ? dw_hh
                   : recurrent_weight_grad(d_pre, 0, hidden, out, h0, reverse,
                                           zero ? mask : Tensor());
  }
  if (output_mask[4] || output_mask[5]) {
    if (!db.defined()) db = threads::sum_rows(flat);
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
