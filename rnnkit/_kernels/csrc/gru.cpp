// GRU recurrence (PyTorch's formulation), compiled: the cell's traits for the time loop
// (loop.h) and its operator's entry points.
//
// With gi = x W_ih^T + b_ih for all steps (one matrix product) and gh = h W_hh^T + b_hh:
//     r = sigmoid(gi_r + gh_r);  z = sigmoid(gi_z + gh_z)
//     n = tanh(gi_n + r * gh_n);  h' = n + z * (h - n)
// Each step is one small matrix product and one pass over the B*H elements. The forward pass
// overwrites gi in place with (r, z, n) and keeps gh_n, which is all the backward pass needs.
// The backward pass's elementwise gate gradients are one pass per step. Dense float32 passes
// with narrow inputs run stacked steps instead (loop.h): gi inside each step's product, the
// gates buffer written only in training.
#include "cell.h"
#include "common.h"
#include "loop.h"

namespace rnnkit {
namespace {

// The GRU cell for loop.h. gates (T, B, 3H) holds gi on entry and (r, z, n) on return; each
// step's gh = h W_hh^T is formed in a per-thread scratch (rows, 3H), its bias b_hh added in the
// epilogue (the n part inside r * (...)); hn_all (T, B, H) keeps gh_n, null in inference. The
// backward pass's per-step gradients: d_gi (T, B, 3H) and d_ghn (T, B, H) (the r and z parts of
// d gh equal those of d gi); the left factor of each step's product is d gh (rows, 3H).
struct Gru {
  static constexpr int kGates = 3;
  static constexpr const char* kName = "gru";
  static constexpr bool kHiddenBiasInProjection = false;
  static constexpr bool kAccumulate = false;
  static constexpr bool kHeldSources = true;

  static micro::Panel forward_panel(micro::Isa isa, const float* w_hh, int64_t hidden) {
    return micro::gate_panel(isa, w_hh, 3, hidden);
  }
  // stacked steps (loop.h's fused::stacked): bias blocks r, z (b_ih + b_hh), n's x part (b_in)
  // and h part (b_hn)
  static constexpr bool kStacked = true;
  static micro::Panel stacked_panel(micro::Isa isa, const float* w_ih, int64_t features,
                                    const float* w_hh, int64_t hidden) {
    return micro::stacked_gate_panel(isa, w_ih, features, w_hh, 3, hidden);
  }
  static micro::Panel stacked_bias(micro::Isa isa, const Tensor& b_ih, const Tensor& b_hh,
                                   int64_t hidden) {
    std::vector<float> row(4 * hidden, 0.0f);
    for (const Tensor* b : {&b_ih, &b_hh}) {
      if (!b->defined()) continue;
      const Tensor v = b->contiguous();
      const float* p = v.data_ptr<float>();
      for (int64_t j = 0; j < 2 * hidden; ++j) row[j] += p[j];
      float* n = row.data() + (b == &b_ih ? 2 : 3) * hidden;
      for (int64_t j = 0; j < hidden; ++j) n[j] = p[2 * hidden + j];
    }
    return micro::stacked_gate_bias(isa, row, 4, hidden);
  }

  Tensor h0, w_hh, bias;  // bias: b_hh, or zeros
  Tensor out, gates, hn_all;

  // training keeps every step's gates and gh_n; the chunks project into the gates when kept
  float* allocate(const Tensor& x, const Pass& p, bool train, const Tensor& projected) {
    out = at::empty({p.steps, p.batch, p.hidden}, x.options());
    gates = projected.defined() || !train
                ? projected
                : at::empty({p.steps, p.batch, 3 * p.hidden}, x.options());
    if (train) hn_all = at::empty({p.steps, p.batch, p.hidden}, x.options());
    return projected.defined() ? nullptr : data_or_null<float>(gates);
  }

  template <typename T>
  struct Forward {
    T* out;
    const T* h0;
    const T* w_hh;
    T* gates;
    T* hn_all;
    const T* b_hh;
    // stacked steps (float32, loop.h's fused::stacked): x (T, B, features), the bias panel
    const T* x = nullptr;
    int64_t features = 0;
    const micro::Panel* bias = nullptr;

    Forward chunk(T* chunk_gates, int64_t offset, const T* h, bool) const {
      Forward c = *this;
      c.out += offset;
      c.gates = chunk_gates;
      if (c.hn_all != nullptr) c.hn_all += offset;
      c.h0 = h;
      return c;
    }

    class Rows {
     public:
      Rows(const Forward& f, const Pass& p, int64_t b0, int64_t rows, bool fused)
          : f_(f), p_(p), b0_(b0), rows_(rows), gh_(fused ? 0 : rows * 3 * p.hidden) {}
      void begin(int64_t, int64_t) {}
      T* product(int64_t) { return gh_.data(); }
      void row(int64_t t, int64_t i, const T* hp, T* oi) {
        const int64_t hidden = p_.hidden, width = 3 * hidden;
        T* g = at_step(f_.gates, t, p_.batch, b0_ + i, width);
        const T* a = gh_.data() + i * width;
        const T* b_hh = f_.b_hh;
        // The gate slices of a row sit at offsets GCC cannot prove disjoint; without this the
        // loop stays scalar.
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
        if (f_.hn_all != nullptr) {
          T* hn_out = at_step(f_.hn_all, t, p_.batch, b0_ + i, hidden);
          for (int64_t j = 0; j < hidden; ++j) hn_out[j] = a[2 * hidden + j] + b_hh[2 * hidden + j];
        }
      }
      void hold(int64_t t, int64_t i, const T* hp, T* oi) const {
        std::copy(hp, hp + p_.hidden, oi);
        if (f_.hn_all != nullptr) {
          T* hn_out = at_step(f_.hn_all, t, p_.batch, b0_ + i, p_.hidden);
          std::fill(hn_out, hn_out + p_.hidden, T(0));
        }
      }
      void end(const T*, T*, const bool*) {}
      void finish() {}
      void fused(micro::Isa isa, const micro::Panel& w, int64_t t, const float* h, float* o) const {
        float* hn = f_.hn_all == nullptr ? nullptr : at_step(f_.hn_all, t, p_.batch, b0_, p_.hidden);
        if (f_.x != nullptr) {  // stacked: the gates are kept only in training
          micro::gru_forward_stacked(
              isa, w, *f_.bias, at_step(f_.x, t, p_.batch, b0_, f_.features), f_.features, h,
              f_.gates == nullptr ? nullptr : at_step(f_.gates, t, p_.batch, b0_, 3 * p_.hidden),
              3 * p_.hidden, hn, o, rows_, p_.hidden);
          return;
        }
        micro::gru_forward_step(
            isa, w, h, f_.b_hh, at_step(f_.gates, t, p_.batch, b0_, 3 * p_.hidden), 3 * p_.hidden,
            hn, o,
            rows_, p_.hidden);
      }

     private:
      const Forward& f_;
      const Pass& p_;
      int64_t b0_, rows_;
      std::vector<T> gh_;  // (rows, 3H): this step's h W_hh^T, library path only
    };
  };

  template <typename T>
  Forward<T> forward() const {
    return {out.data_ptr<T>(), h0.data_ptr<T>(), w_hh.data_ptr<T>(), data_or_null<T>(gates),
            data_or_null<T>(hn_all), bias.data_ptr<T>()};
  }

  // d_ghn may be d_out itself (an output gradient the backward pass owns): each row is read
  // before it is written. With zero padding a step after masked ones finds its held previous
  // state through held_sources.
  template <typename T>
  struct Backward {
    const T* d_out;
    T* dh;
    const T* out;
    const T* h0;
    const T* w_hh;
    const T* gates;
    const T* hn_all;
    T* d_gi;
    T* d_ghn;

    class Rows {
     public:
      Rows(const Backward& b, const Pass& p, const std::vector<int64_t>& sources, int64_t b0,
           int64_t rows, bool fused)
          : b_(b), p_(p), sources_(sources), b0_(b0), rows_(rows),
            dgh_((fused ? 2 : 1) * rows * 3 * p.hidden) {}
      void begin(int64_t t) {
        hp_rows_ = previous_state(b_.out, b_.h0, t, p_.steps, p_.batch, b0_, p_.hidden, p_.reverse);
      }
      const T* go(int64_t t, int64_t i) const {
        return at_step(b_.d_out, t, p_.batch, b0_ + i, p_.hidden);
      }
      void hold(int64_t t, int64_t i) {
        const int64_t hidden = p_.hidden, width = 3 * hidden;
        T* dgi = at_step(b_.d_gi, t, p_.batch, b0_ + i, width);
        T* dg = dgh_.data() + i * width;
        T* dn = at_step(b_.d_ghn, t, p_.batch, b0_ + i, hidden);
        std::fill(dgi, dgi + width, T(0));
        std::fill(dg, dg + width, T(0));
        std::fill(dn, dn + hidden, T(0));
      }
      void row(int64_t t, int64_t i, T* c) {  // c: d h_t in, total z out
        const int64_t hidden = p_.hidden, width = 3 * hidden;
        const T* g = at_step(b_.gates, t, p_.batch, b0_ + i, width);
        const T* hn = at_step(b_.hn_all, t, p_.batch, b0_ + i, hidden);
        const T* go = this->go(t, i);
        const T* hp = p_.zero ? held_state(sources_, b_.out, b_.h0, t, p_.batch, b0_ + i, hidden)
                              : hp_rows_ + i * hidden;
        T* dgi = at_step(b_.d_gi, t, p_.batch, b0_ + i, width);
        T* dn = at_step(b_.d_ghn, t, p_.batch, b0_ + i, hidden);
        T* dg = dgh_.data() + i * width;
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
      void end(int64_t, const bool*) {}
      const T* left(int64_t) const { return dgh_.data(); }
      T beta() const { return T(1); }

      // the fused steps alternate between two d gh buffers: step s's and the one before it
      micro::GruBackStep describe(int64_t s, int64_t t) {
        const int64_t hidden = p_.hidden, width = 3 * hidden;
        return {at_step(b_.gates, t, p_.batch, b0_, width),
                at_step(b_.hn_all, t, p_.batch, b0_, hidden),
                previous_state(b_.out, b_.h0, t, p_.steps, p_.batch, b0_, hidden, p_.reverse),
                at_step(b_.d_out, t, p_.batch, b0_, hidden),
                at_step(b_.d_gi, t, p_.batch, b0_, width),
                at_step(b_.d_ghn, t, p_.batch, b0_, hidden),
                dgh_.data() + (s % 2) * rows_ * width};
      }
      void first(micro::Isa isa, int64_t t, float* carry) {
        micro::gru_backward_first(isa, describe(0, t), carry, rows_, p_.hidden);
      }
      void step(micro::Isa isa, const micro::Panel& w, int64_t s, int64_t,
                const micro::GruBackStep* next, float* carry) {
        micro::gru_backward_step(isa, w, dgh_.data() + (s % 2) * rows_ * 3 * p_.hidden, next,
                                 carry, rows_, p_.hidden);
      }

     private:
      const Backward& b_;
      const Pass& p_;
      const std::vector<int64_t>& sources_;
      int64_t b0_, rows_;
      std::vector<T> dgh_;  // d gh of this step (library path), or of two steps (fused)
      const T* hp_rows_ = nullptr;  // the rows' previous states, this step
    };
  };
};

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
  const Pass pass = make_pass(x, w_hh.size(1), mask, reverse, zero);
  Gru cell{h0, w_hh, bias_or_zeros(b_hh, 3 * w_hh.size(1), x)};
  run_forward(cell, x, w_ih, b_ih, b_hh, pass, train);
  Tensor h_n = last_state(cell.out, h0, reverse, pass.zero ? mask : Tensor());
  if (!train) return {cell.out, h_n, unused(x), unused(x)};
  return {cell.out, h_n, cell.gates, cell.hn_all};
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
    backward_loop<Gru, scalar_t>(
        {d_out.grad.data_ptr<scalar_t>(), dh.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
         h0.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(), gates.data_ptr<scalar_t>(),
         hn_all.data_ptr<scalar_t>(), d_gi.data_ptr<scalar_t>(), d_ghn.data_ptr<scalar_t>()},
        make_pass(x, hidden, mask, reverse, zero));
  });
  const Tensor flat_gi = d_gi.view({steps * batch, 3 * hidden});
  std::array<Tensor, 6> grads;
  grads.fill(unused(x));
  if (output_mask[0]) {
    grads[0] = matmul(flat_gi, Op::N, w_ih, Op::N).view({steps, batch, features});
  }
  if (output_mask[1]) grads[1] = dh;
  // The weight and bias gradients in two passes where weight_grads runs: over d_gi (W_ih's,
  // the r and z rows of W_hh's, b_ih's) and over d_ghn (the n rows of W_hh's and b_hh's).
  Tensor dw_ih, dw_hh, db_i, db_n;
  if (x.scalar_type() == at::kFloat && !zero &&
      (output_mask[2] || output_mask[3] || output_mask[4] || output_mask[5])) {
    dw_ih = output_mask[2] ? at::empty({3 * hidden, features}, x.options()) : Tensor();
    dw_hh = output_mask[3] ? at::empty({3 * hidden, hidden}, x.options()) : Tensor();
    db_i = output_mask[4] || output_mask[5] ? at::empty({3 * hidden}, x.options()) : Tensor();
    db_n = output_mask[5] ? at::empty({hidden}, x.options()) : Tensor();
    float* dw_hh_n = output_mask[3] ? dw_hh.data_ptr<float>() + 2 * hidden * hidden : nullptr;
    const bool ran =
        weight_grads(d_gi.data_ptr<float>(), 3 * hidden, 3 * hidden, steps, batch,
                     x.data_ptr<float>(), features, data_or_null<float>(dw_ih),
                     out.data_ptr<float>(), h0.data_ptr<float>(), hidden, reverse, 2 * hidden,
                     data_or_null<float>(dw_hh), data_or_null<float>(db_i)) &&
        (!(output_mask[3] || output_mask[5]) ||
         weight_grads(d_ghn.data_ptr<float>(), hidden, hidden, steps, batch, nullptr, features,
                      nullptr, out.data_ptr<float>(), h0.data_ptr<float>(), hidden, reverse,
                      hidden, dw_hh_n, data_or_null<float>(db_n)));
    if (!ran) dw_ih = dw_hh = db_i = db_n = Tensor();
  }
  if (output_mask[2]) {
    grads[2] = dw_ih.defined()
                   ? dw_ih
                   : matmul(flat_gi, Op::T, x.view({steps * batch, features}), Op::N);
  }
  if (output_mask[3]) {
    const Tensor zero_mask = zero ? mask : Tensor();
    grads[3] = dw_hh.defined()
                   ? dw_hh
                   : at::cat({recurrent_weight_grad(d_gi, 0, 2 * hidden, out, h0, reverse,
                                                    zero_mask),
                              recurrent_weight_grad(d_ghn, 0, hidden, out, h0, reverse,
                                                    zero_mask)});
  }
  if (output_mask[4]) grads[4] = db_i.defined() ? db_i : threads::sum_rows(flat_gi);
  if (output_mask[5]) {
    grads[5] = db_n.defined()
                   ? at::cat({db_i.narrow(0, 0, 2 * hidden), db_n})
                   : at::cat({threads::sum_rows(flat_gi.narrow(1, 0, 2 * hidden)),
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
