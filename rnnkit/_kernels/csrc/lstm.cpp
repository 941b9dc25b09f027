// LSTM recurrence (gates i, f, g, o), compiled: the cell's traits for the time loop (loop.h)
// and its operator's entry points.
//
// With gx = x W_ih^T + b_ih + b_hh for all steps (one matrix product), per step:
//     i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gx + h W_hh^T)
//     c' = f * c + i * g;  h' = o * tanh(c')
// The projections are written into the gates buffer (T, B, 4H); each step adds h W_hh^T onto
// its slice (one small matrix product) and replaces it by the activated gates in the same pass
// that updates c and h. The backward pass's gate gradients are one pass per step. Dense
// float32 passes with narrow inputs run stacked steps instead (loop.h): the projection inside
// each step's product, the gates buffer written (activated) only in training.
//
// With an output projection w_hr (P, H) (torch.nn's proj_size): h' = (o * tanh(c')) W_hr^T,
// one more small product per step (the rows' end-of-step hook); h, h0 and out are P wide, W_hh
// is (4H, P), c stays H wide. Projected calls take the library path (the fused steps' panels
// are square: depth H).
#include "cell.h"
#include "common.h"
#include "loop.h"

namespace rnnkit {
namespace {

// The LSTM cell for loop.h. gates (T, B, 4H) holds the input projections (with both biases) on
// entry, h W_hh^T added in place, and the activated gates on return; the cell state c is a
// second state: c_all (T, B, H) keeps every step's in training, else it alternates between two
// halves of a per-thread buffer (an update in place would alias its input, and the compiler's
// alias check would then skip the vector loop); c_n (B, H) receives the last. The backward
// pass's per-step gradient is d_gates (T, B, 4H), the left factor of each step's product; d c
// is carried back in dc, and d_out is read with its own strides. With w_hr, m = o * tanh(c)
// is what the projection multiplies: a per-thread buffer forward; backward, d_proj[t] (T, B, P)
// receives each step's d h (0 where held) and m_all[t] (T, B, H) its m, for W_hr's gradient.
struct Lstm {
  static constexpr int kGates = 4;
  static constexpr const char* kName = "lstm";
  static constexpr bool kHiddenBiasInProjection = true;
  static constexpr bool kAccumulate = true;
  static constexpr bool kHeldSources = false;  // c_all holds c through masked steps

  static micro::Panel forward_panel(micro::Isa isa, const float* w_hh, int64_t hidden) {
    return micro::gate_panel(isa, w_hh, 4, hidden);
  }
  // stacked steps (loop.h's fused::stacked): the 4 gates' biases, b_ih + b_hh
  static constexpr bool kStacked = true;
  static micro::Panel stacked_panel(micro::Isa isa, const float* w_ih, int64_t features,
                                    const float* w_hh, int64_t hidden) {
    return micro::stacked_gate_panel(isa, w_ih, features, w_hh, 4, hidden);
  }
  static micro::Panel stacked_bias(micro::Isa isa, const Tensor& b_ih, const Tensor& b_hh,
                                   int64_t hidden) {
    std::vector<float> row = summed_bias(b_ih, b_hh, 4 * hidden);
    row.resize(4 * hidden, 0.0f);  // no bias: zeros
    return micro::stacked_gate_bias(isa, row, 4, hidden);
  }

  Tensor h0, c0, w_hh, w_hr;  // w_hr (P, H), or undefined
  Tensor out, c_n, gates, c_all;

  // training keeps every step's gates and c; the chunks project into the gates when kept
  float* allocate(const Tensor& x, const Pass& p, bool train, const Tensor& projected) {
    out = at::empty({p.steps, p.batch, p.state}, x.options());
    c_n = at::empty({p.batch, p.hidden}, x.options());
    gates = projected.defined() || !train
                ? projected
                : at::empty({p.steps, p.batch, 4 * p.hidden}, x.options());
    if (train) c_all = at::empty({p.steps, p.batch, p.hidden}, x.options());
    return projected.defined() ? nullptr : data_or_null<float>(gates);
  }

  template <typename T>
  struct Forward {
    T* out;
    const T* h0;
    const T* w_hh;
    const T* c0;
    T* gates;
    T* c_all;
    T* c_n;
    const T* w_hr;  // or null
    // stacked steps (float32, loop.h's fused::stacked): x (T, B, features), the bias panel
    const T* x = nullptr;
    int64_t features = 0;
    const micro::Panel* bias = nullptr;

    // c0 may be c_n itself (a chunk continuing the previous one): each thread reads its rows
    // before it writes them
    Forward chunk(T* chunk_gates, int64_t offset, const T* h, bool first) const {
      Forward c = *this;
      c.out += offset;
      c.gates = chunk_gates;
      if (c.c_all != nullptr) c.c_all += offset;
      c.h0 = h;
      if (!first) c.c0 = c_n;  // the last chunk's c
      return c;
    }

    class Rows {
     public:
      Rows(const Forward& f, const Pass& p, int64_t b0, int64_t rows, bool)
          : f_(f), p_(p), b0_(b0), rows_(rows),
            c_buffer_(f.c_all == nullptr ? 2 * rows * p.hidden : 0),
            c_(f.c0 + b0 * p.hidden) {
        if (f.w_hr != nullptr) {
          m_.resize(rows * p.hidden);
          projection_ = std::make_unique<PackedRight<T>>(Op::T, rows, p.state, p.hidden, f.w_hr,
                                                         p.hidden);  // @ W_hr^T
        }
      }
      void begin(int64_t s, int64_t t) {
        c_new_ = f_.c_all == nullptr ? c_buffer_.data() + (s % 2) * rows_ * p_.hidden
                                     : at_step(f_.c_all, t, p_.batch, b0_, p_.hidden);
      }
      T* product(int64_t t) const { return at_step(f_.gates, t, p_.batch, b0_, 4 * p_.hidden); }
      void row(int64_t t, int64_t i, const T*, T* h_out) {
        const int64_t hidden = p_.hidden;
        T* ar = at_step(f_.gates, t, p_.batch, b0_ + i, 4 * hidden);
        const T* cp = c_ + i * hidden;
        T* cr = c_new_ + i * hidden;
        T* hr = projection_ == nullptr ? h_out : m_.data() + i * hidden;  // h', or m
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
      void hold(int64_t, int64_t i, const T* hp, T* hr) const {
        const T* cp = c_ + i * p_.hidden;
        std::copy(cp, cp + p_.hidden, c_new_ + i * p_.hidden);
        if (projection_ == nullptr) std::copy(hp, hp + p_.hidden, hr);  // else in end()
      }
      void end(const T* h, T* o, const bool* keep) {
        c_ = c_new_;
        if (projection_ == nullptr) return;
        projection_->multiply(m_.data(), p_.hidden, T(0), o, p_.state);  // h' = m W_hr^T
        if (keep == nullptr) return;
        for (int64_t i = 0; i < rows_; ++i) {  // the held rows' h, over their product
          if (!keep[i]) std::copy(h + i * p_.state, h + (i + 1) * p_.state, o + i * p_.state);
        }
      }
      void finish() const { std::copy(c_, c_ + rows_ * p_.hidden, f_.c_n + b0_ * p_.hidden); }
      void fused(micro::Isa isa, const micro::Panel& w, int64_t t, const float* h, float* o) const {
        if (f_.x != nullptr) {  // stacked: the gates are kept only in training
          micro::lstm_forward_stacked(isa, w, *f_.bias, at_step(f_.x, t, p_.batch, b0_, f_.features),
                                      f_.features, h, c_, f_.gates == nullptr ? nullptr : product(t),
                                      4 * p_.hidden, o, c_new_, rows_, p_.hidden);
          return;
        }
        micro::lstm_forward_step(isa, w, h, c_, product(t), 4 * p_.hidden, o, c_new_, rows_,
                                 p_.hidden);
      }

     private:
      const Forward& f_;
      const Pass& p_;
      int64_t b0_, rows_;
      std::vector<T> c_buffer_;
      const T* c_;          // (rows, H): the c this step starts from
      T* c_new_ = nullptr;  // and the one it writes
      std::vector<T> m_;    // (rows, H): o * tanh(c'), with a projection
      std::unique_ptr<PackedRight<T>> projection_;  // W_hr^T, with a projection
    };
  };

  template <typename T>
  Forward<T> forward() const {
    return {out.data_ptr<T>(), h0.data_ptr<T>(), w_hh.data_ptr<T>(), c0.data_ptr<T>(),
            data_or_null<T>(gates), data_or_null<T>(c_all), c_n.data_ptr<T>(),
            data_or_null<T>(w_hr)};
  }

  // dh, dc enter as d h_n, d c_n and leave as d h0, d c0.
  template <typename T>
  struct Backward {
    StridedRows<T> d_out;
    T* dh;
    const T* w_hh;
    T* dc;
    const T* c_all;
    const T* c0;
    const T* gates;
    T* d_gates;
    const T* w_hr;  // or null; then d_proj, m_all too
    T* d_proj;
    T* m_all;

    class Rows {
     public:
      Rows(const Backward& b, const Pass& p, const std::vector<int64_t>&, int64_t b0,
           int64_t rows, bool fused)
          : b_(b), p_(p), b0_(b0), rows_(rows), carry_c_(b.dc + b0 * p.hidden),
            scratch_(fused ? 0 : p.state) {
        if (b.w_hr != nullptr) {
          dm_.resize(rows * p.hidden);
          unprojection_ = std::make_unique<PackedRight<T>>(Op::N, rows, p.hidden, p.state,
                                                           b.w_hr, p.hidden);  // @ W_hr
        }
      }
      void begin(int64_t t) {
        cp_rows_ = previous_state(b_.c_all, b_.c0, t, p_.steps, p_.batch, b0_, p_.hidden,
                                  p_.reverse);
      }
      const T* go(int64_t t, int64_t i) {
        return b_.d_out.row(t, b0_ + i, scratch_.data(), p_.state);
      }
      void hold(int64_t t, int64_t i) const {
        if (unprojection_ != nullptr) {  // its gates' rows in end()
          T* dpr = at_step(b_.d_proj, t, p_.batch, b0_ + i, p_.state);
          std::fill(dpr, dpr + p_.state, T(0));
          return;
        }
        T* dar = at_step(b_.d_gates, t, p_.batch, b0_ + i, 4 * p_.hidden);
        std::fill(dar, dar + 4 * p_.hidden, T(0));
      }
      void row(int64_t t, int64_t i, T* gh) {  // gh: d h_t in, zero out (d h_{t-1} adds on)
        if (unprojection_ != nullptr) {  // d h_t kept for end(): the gates wait for d m
          const T* go = this->go(t, i);
          T* dpr = at_step(b_.d_proj, t, p_.batch, b0_ + i, p_.state);
          for (int64_t j = 0; j < p_.state; ++j) {
            dpr[j] = gh[j] + go[j];
            gh[j] = T(0);
          }
          return;
        }
        const int64_t hidden = p_.hidden, width = 4 * hidden;
        const T* g = at_step(b_.gates, t, p_.batch, b0_ + i, width);
        const T* ct = at_step(b_.c_all, t, p_.batch, b0_ + i, hidden);
        const T* go = this->go(t, i);
        const T* cp = cp_rows_ + i * hidden;
        T* dar = at_step(b_.d_gates, t, p_.batch, b0_ + i, width);
        T* gc = carry_c_ + i * hidden;
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
      // with a projection: d m = d h_t W_hr, then the gates' gradients from it
      void end(int64_t t, const bool* keep) {
        if (unprojection_ == nullptr) return;
        const int64_t hidden = p_.hidden, width = 4 * hidden;
        unprojection_->multiply(at_step(b_.d_proj, t, p_.batch, b0_, p_.state), p_.state, T(0),
                                dm_.data(), hidden);  // (rows, H)
        for (int64_t i = 0; i < rows_; ++i) {
          T* dar = at_step(b_.d_gates, t, p_.batch, b0_ + i, width);
          T* mr = at_step(b_.m_all, t, p_.batch, b0_ + i, hidden);
          if (keep != nullptr && !keep[i]) {
            std::fill(dar, dar + width, T(0));
            std::fill(mr, mr + hidden, T(0));
            continue;
          }
          const T* g = at_step(b_.gates, t, p_.batch, b0_ + i, width);
          const T* ct = at_step(b_.c_all, t, p_.batch, b0_ + i, hidden);
          const T* cp = cp_rows_ + i * hidden;
          const T* dmr = dm_.data() + i * hidden;
          T* gc = carry_c_ + i * hidden;
#pragma omp simd  // as in the forward pass
          for (int64_t j = 0; j < hidden; ++j) {
            const T ig = g[j], fg = g[hidden + j], gg = g[2 * hidden + j], og = g[3 * hidden + j];
            const T dm = dmr[j];
            const T tc = tanh_(ct[j]);
            const T dct = gc[j] + dm * og * (T(1) - tc * tc);
            dar[j] = dct * gg * ig * (T(1) - ig);
            dar[hidden + j] = dct * cp[j] * fg * (T(1) - fg);
            dar[2 * hidden + j] = dct * ig * (T(1) - gg * gg);
            dar[3 * hidden + j] = dm * tc * og * (T(1) - og);
            gc[j] = dct * fg;
            mr[j] = og * tc;
          }
        }
      }
      const T* left(int64_t t) const {
        return at_step(b_.d_gates, t, p_.batch, b0_, 4 * p_.hidden);
      }
      T beta() const { return T(1); }

      micro::LstmBackStep describe(int64_t, int64_t t) const {
        const int64_t hidden = p_.hidden, width = 4 * hidden;
        const StridedRows<T>& d_out = b_.d_out;
        return {at_step(b_.gates, t, p_.batch, b0_, width),
                at_step(b_.c_all, t, p_.batch, b0_, hidden),
                previous_state(b_.c_all, b_.c0, t, p_.steps, p_.batch, b0_, hidden, p_.reverse),
                d_out.data + t * d_out.step_stride + b0_ * d_out.batch_stride,
                d_out.batch_stride,
                d_out.stride,
                at_step(b_.d_gates, t, p_.batch, b0_, width)};
      }
      void first(micro::Isa isa, int64_t t, float* carry) const {
        micro::lstm_backward_first(isa, describe(0, t), carry, carry_c_, rows_, p_.hidden);
      }
      void step(micro::Isa isa, const micro::Panel& w, int64_t, int64_t t,
                const micro::LstmBackStep* next, float* carry) const {
        micro::lstm_backward_step(isa, w, left(t), next, carry, carry_c_, rows_, p_.hidden);
      }

     private:
      const Backward& b_;
      const Pass& p_;
      int64_t b0_, rows_;
      T* carry_c_;              // (rows, H): d c, carried back through time
      std::vector<T> scratch_;  // a strided d_out row, gathered (library path)
      const T* cp_rows_ = nullptr;  // the rows' previous c, this step
      std::vector<T> dm_;       // (rows, H): d m of this step, with a projection
      std::unique_ptr<PackedRight<T>> unprojection_;  // W_hr, with a projection
    };
  };
};

}  // namespace

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_forward(
    const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_ih_in,
    const Tensor& w_hh_in, const Tensor& b_ih, const Tensor& b_hh, const Tensor& w_hr_in,
    const Tensor& mask_in, bool reverse, bool zero, bool train) {
  check_inputs("lstm", 4, x_in, {h0_in, c0_in}, w_ih_in, w_hh_in, b_ih, b_hh, mask_in, w_hr_in);
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor w_hr = contiguous_or_empty(w_hr_in);
  const Tensor mask = contiguous_or_empty(mask_in);
  const int64_t hidden = w_hh.size(0) / 4;
  const Pass pass = make_pass(x, hidden, mask, reverse, zero,
                              w_hr.defined() ? w_hh.size(1) : -1);
  Lstm cell{h0, c0, w_hh, w_hr};
  run_forward(cell, x, w_ih, b_ih, b_hh, pass, train);
  Tensor h_n = last_state(cell.out, h0, reverse, pass.zero ? mask : Tensor());
  if (!train) return {cell.out, h_n, cell.c_n, unused(x), unused(x)};
  return {cell.out, h_n, cell.c_n, cell.gates, cell.c_all};
}

std::array<Tensor, 8> lstm_backward(const Tensor& grad_out, const Tensor& grad_h_n,
                                    const Tensor& grad_c_n, const Tensor& x_in,
                                    const Tensor& h0_in, const Tensor& c0_in,
                                    const Tensor& w_ih_in, const Tensor& w_hh_in,
                                    const Tensor& w_hr_in, const Tensor& out,
                                    const Tensor& gates, const Tensor& c_all,
                                    const Tensor& mask_in, bool reverse, bool zero,
                                    std::array<bool, 8> output_mask) {
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor w_hr = contiguous_or_empty(w_hr_in);
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = w_hh.size(0) / 4, proj = w_hh.size(1);  // proj: the width of h
  Tensor dh = grad_h_n.contiguous().clone();
  Tensor dc = grad_c_n.contiguous().clone();
  Tensor d_gates = at::empty_like(gates);  // (T, B, 4H)
  Tensor d_proj, m_all;  // projected: (T, B, P) and (T, B, H), for W_hr's gradient
  if (w_hr.defined()) {
    d_proj = at::empty({steps, batch, proj}, x.options());
    m_all = at::empty({steps, batch, hidden}, x.options());
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_backward", [&] {
    backward_loop<Lstm, scalar_t>(
        {StridedRows<scalar_t>(grad_out), dh.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
         dc.data_ptr<scalar_t>(), c_all.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(),
         gates.data_ptr<scalar_t>(), d_gates.data_ptr<scalar_t>(), data_or_null<scalar_t>(w_hr),
         data_or_null<scalar_t>(d_proj), data_or_null<scalar_t>(m_all)},
        make_pass(x, hidden, mask, reverse, zero, w_hr.defined() ? proj : -1));
  });
  const Tensor flat = d_gates.view({steps * batch, 4 * hidden});
  std::array<Tensor, 8> grads;
  grads.fill(unused(x));
  if (output_mask[0]) grads[0] = matmul(flat, Op::N, w_ih, Op::N).view({steps, batch, features});
  if (output_mask[1]) grads[1] = dh;
  if (output_mask[2]) grads[2] = dc;
  // the weight and bias gradients in one pass over d_gates where weight_grads runs
  Tensor dw_ih, dw_hh, db;
  if (x.scalar_type() == at::kFloat && !zero &&
      (output_mask[3] || output_mask[4] || output_mask[5] || output_mask[6])) {
    dw_ih = output_mask[3] ? at::empty({4 * hidden, features}, x.options()) : Tensor();
    dw_hh = output_mask[4] ? at::empty({4 * hidden, proj}, x.options()) : Tensor();
    db = output_mask[5] || output_mask[6] ? at::empty({4 * hidden}, x.options()) : Tensor();
    if (!weight_grads(d_gates.data_ptr<float>(), 4 * hidden, 4 * hidden, steps, batch,
                      x.data_ptr<float>(), features, data_or_null<float>(dw_ih),
                      out.data_ptr<float>(), h0.data_ptr<float>(), proj, reverse, 4 * hidden,
                      data_or_null<float>(dw_hh), data_or_null<float>(db))) {
      dw_ih = dw_hh = db = Tensor();
    }
  }
  if (output_mask[3]) {
    grads[3] = dw_ih.defined() ? dw_ih
                               : matmul(flat, Op::T, x.view({steps * batch, features}), Op::N);
  }
  if (output_mask[4]) {
    grads[4] = dw_hh.defined() ? dw_hh
                               : recurrent_weight_grad(d_gates, 0, 4 * hidden, out, h0, reverse,
                                                       zero ? mask : Tensor());
  }
  if (output_mask[5] || output_mask[6]) {
    if (!db.defined()) db = threads::sum_rows(flat);
    if (output_mask[5]) grads[5] = db;
    if (output_mask[6]) grads[6] = output_mask[5] ? db.clone() : db;
  }
  if (output_mask[7] && w_hr.defined()) {  // d W_hr (P, H) = sum_t d_proj[t]^T m[t]
    grads[7] = matmul(d_proj.view({steps * batch, proj}), Op::T,
                      m_all.view({steps * batch, hidden}), Op::N);
  }
  return grads;
}

// The operator rnnkit::lstm (see cell.h). Forward tensors: x, h0, c0, w_ih, w_hh, b_ih, b_hh,
// w_hr, mask; flags: reverse, zero_padding, train. Returns (out, h_n, c_n, gates (activated i,
// f, g, o), c_all).
Tensors lstm_forward_entry(const Tensors& t, const Flags& f) {
  return as_vector(
      lstm_forward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], f[0], f[1], f[2]));
}
// tensors: grad_out, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, out, gates,
// c_all, mask
Tensors lstm_backward_entry(const Tensors& t, const Flags& f, const Flags& needs) {
  return as_vector(lstm_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[10], t[11],
                                 t[12], t[13], t[14], f[0], f[1], as_array<8>(needs)));
}

}  // namespace rnnkit

RNNKIT_CELL(lstm, rnnkit::lstm_forward_entry, rnnkit::lstm_backward_entry)
