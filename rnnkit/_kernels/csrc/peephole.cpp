// Peephole LSTM recurrence (Gers & Schmidhuber 2000; rnnkit/_kernels/lstm_variants.py states the
// formulation), compiled: the cell's traits for the time loop (loop.h), its fused steps and its
// operator's entry points.
//
// With gx = x W_ih^T + b_ih + b_hh for all steps and the diagonal peepholes p_i, p_f, p_o (H,),
// per step:
//     i = sigmoid(gx_i + h W_hi^T + p_i * c);  f = sigmoid(gx_f + h W_hf^T + p_f * c)
//     g = tanh(gx_g + h W_hg^T);  c' = f * c + i * g
//     o = sigmoid(gx_o + h W_ho^T + p_o * c');  h' = o * tanh(c')
// The buffers and layouts are the LSTM's (lstm.cpp): gates (T, B, 4H) holds the projections on
// entry and the activated (i, f, g, o) on return, c_all (T, B, H) every step's c in training.
// The peephole terms are elementwise in c, so the fused steps are the LSTM's micro-kernel with
// them in its epilogue (peephole_body.h), and the library path the LSTM's rows with them.
// Backward, with dA the gates' pre-activation gradients (the left factor of each step's
// product, as the LSTM's):
//     d o~ = d h tanh(c') o (1 - o);  d c' = d c + d h o (1 - tanh^2 c') + p_o d o~
//     d i~, d f~, d g~ as the LSTM's from d c';  d c = d c' f + p_i d i~ + p_f d f~
// and the peepholes' gradients after the loop: d p_i = sum_t d i~_t c_{t-1}, d p_f likewise,
// d p_o = sum_t d o~_t c_t.
#include "cell.h"
#include "common.h"
#include "loop.h"

namespace rnnkit {
namespace micro {

// One step back of the peephole LSTM: micro::LstmBackStep's fields and the peepholes.
struct PeepholeBackStep {
  const float* gates;   // (rows, 4H) activated i, f, g, o
  const float* c;       // (rows, H) c of this step
  const float* c_prev;  // (rows, H) c of the step before it (c0 for the first)
  const float* go;      // this step's output gradient, row 0 of the thread; rows at go_rows
  int64_t go_rows;      // row stride of go
  int64_t go_stride;    // element stride of go (1, or 0 for a broadcast gradient)
  float* d_gates;       // (rows, 4H) receives dA of this step
  const float* peep;    // (3H) p_i, p_f, p_o
};

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")
namespace avx512 {
#include "peephole_body.h"
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "peephole_body.h"
}  // namespace avx2
#pragma GCC pop_options

}  // namespace micro

namespace {

// The peephole LSTM for loop.h: lstm.cpp's Lstm without the output projection, plus `peep`
// (3H: p_i, p_f, p_o, zeros for an absent one).
struct PeepholeLstm {
  static constexpr int kGates = 4;
  static constexpr const char* kName = "peephole_lstm";
  static constexpr bool kHiddenBiasInProjection = true;
  static constexpr bool kAccumulate = true;
  static constexpr bool kHeldSources = false;  // c_all holds c through masked steps

  static micro::Panel forward_panel(micro::Isa isa, const float* w_hh, int64_t hidden) {
    return micro::gate_panel(isa, w_hh, 4, hidden);
  }

  Tensor h0, c0, w_hh, peep;
  Tensor out, c_n, gates, c_all;

  float* allocate(const Tensor& x, const Pass& p, bool train, const Tensor& projected) {
    out = at::empty({p.steps, p.batch, p.hidden}, x.options());
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
    const T* peep;

    Forward chunk(T* chunk_gates, int64_t offset, const T* h, bool first) const {
      Forward c = *this;
      c.out += offset;
      c.gates = chunk_gates;
      if (c.c_all != nullptr) c.c_all += offset;
      c.h0 = h;
      if (!first) c.c0 = c_n;  // the last chunk's c (each thread reads its rows first)
      return c;
    }

    class Rows {
     public:
      Rows(const Forward& f, const Pass& p, int64_t b0, int64_t rows, bool)
          : f_(f), p_(p), b0_(b0), rows_(rows),
            c_buffer_(f.c_all == nullptr ? 2 * rows * p.hidden : 0),
            c_(f.c0 + b0 * p.hidden) {}
      void begin(int64_t s, int64_t t) {
        c_new_ = f_.c_all == nullptr ? c_buffer_.data() + (s % 2) * rows_ * p_.hidden
                                     : at_step(f_.c_all, t, p_.batch, b0_, p_.hidden);
      }
      T* product(int64_t t) const { return at_step(f_.gates, t, p_.batch, b0_, 4 * p_.hidden); }
      void row(int64_t t, int64_t i, const T*, T* hr) {
        const int64_t hidden = p_.hidden;
        T* ar = at_step(f_.gates, t, p_.batch, b0_ + i, 4 * hidden);
        const T* cp = c_ + i * hidden;
        T* cr = c_new_ + i * hidden;
        const T *pi = f_.peep, *pf = f_.peep + hidden, *po = f_.peep + 2 * hidden;
#pragma omp simd  // the gate slices' offsets are not provably disjoint (lstm.cpp)
        for (int64_t j = 0; j < hidden; ++j) {
          const T ig = sigmoid(ar[j] + pi[j] * cp[j]);
          const T fg = sigmoid(ar[hidden + j] + pf[j] * cp[j]);
          const T gg = tanh_(ar[2 * hidden + j]);
          const T cj = fg * cp[j] + ig * gg;
          const T og = sigmoid(ar[3 * hidden + j] + po[j] * cj);
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
        std::copy(hp, hp + p_.hidden, hr);
      }
      void end(const T*, T*, const bool*) { c_ = c_new_; }
      void finish() const { std::copy(c_, c_ + rows_ * p_.hidden, f_.c_n + b0_ * p_.hidden); }
      void fused(micro::Isa isa, const micro::Panel& w, int64_t t, const float* h, float* o) const {
        const int64_t ld = 4 * p_.hidden;
        if (isa == micro::Isa::Avx512) {
          micro::avx512::peephole_forward_step(w, f_.peep, h, c_, product(t), ld, o, c_new_,
                                               rows_, p_.hidden);
        } else {
          micro::avx2::peephole_forward_step(w, f_.peep, h, c_, product(t), ld, o, c_new_,
                                             rows_, p_.hidden);
        }
      }

     private:
      const Forward& f_;
      const Pass& p_;
      int64_t b0_, rows_;
      std::vector<T> c_buffer_;
      const T* c_;          // (rows, H): the c this step starts from
      T* c_new_ = nullptr;  // and the one it writes
    };
  };

  template <typename T>
  Forward<T> forward() const {
    return {out.data_ptr<T>(), h0.data_ptr<T>(), w_hh.data_ptr<T>(), c0.data_ptr<T>(),
            data_or_null<T>(gates), data_or_null<T>(c_all), c_n.data_ptr<T>(),
            peep.data_ptr<T>()};
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
    const T* peep;

    class Rows {
     public:
      Rows(const Backward& b, const Pass& p, const std::vector<int64_t>&, int64_t b0,
           int64_t rows, bool fused)
          : b_(b), p_(p), b0_(b0), rows_(rows), carry_c_(b.dc + b0 * p.hidden),
            scratch_(fused ? 0 : p.hidden) {}
      void begin(int64_t t) {
        cp_rows_ = previous_state(b_.c_all, b_.c0, t, p_.steps, p_.batch, b0_, p_.hidden,
                                  p_.reverse);
      }
      const T* go(int64_t t, int64_t i) {
        return b_.d_out.row(t, b0_ + i, scratch_.data(), p_.hidden);
      }
      void hold(int64_t t, int64_t i) const {
        T* dar = at_step(b_.d_gates, t, p_.batch, b0_ + i, 4 * p_.hidden);
        std::fill(dar, dar + 4 * p_.hidden, T(0));
      }
      void row(int64_t t, int64_t i, T* gh) {  // gh: d h_t in, zero out (d h_{t-1} adds on)
        const int64_t hidden = p_.hidden, width = 4 * hidden;
        const T* g = at_step(b_.gates, t, p_.batch, b0_ + i, width);
        const T* ct = at_step(b_.c_all, t, p_.batch, b0_ + i, hidden);
        const T* go = this->go(t, i);
        const T* cp = cp_rows_ + i * hidden;
        const T *pi = b_.peep, *pf = b_.peep + hidden, *po = b_.peep + 2 * hidden;
        T* dar = at_step(b_.d_gates, t, p_.batch, b0_ + i, width);
        T* gc = carry_c_ + i * hidden;
#pragma omp simd  // as in the forward pass
        for (int64_t j = 0; j < hidden; ++j) {
          const T ig = g[j], fg = g[hidden + j], gg = g[2 * hidden + j], og = g[3 * hidden + j];
          const T total = gh[j] + go[j];
          const T tc = tanh_(ct[j]);
          const T d_o = total * tc * og * (T(1) - og);
          const T dct = gc[j] + total * og * (T(1) - tc * tc) + po[j] * d_o;
          const T d_i = dct * gg * ig * (T(1) - ig);
          const T d_f = dct * cp[j] * fg * (T(1) - fg);
          dar[j] = d_i;
          dar[hidden + j] = d_f;
          dar[2 * hidden + j] = dct * ig * (T(1) - gg * gg);
          dar[3 * hidden + j] = d_o;
          gc[j] = dct * fg + pi[j] * d_i + pf[j] * d_f;
          gh[j] = T(0);
        }
      }
      void end(int64_t, const bool*) {}
      const T* left(int64_t t) const {
        return at_step(b_.d_gates, t, p_.batch, b0_, 4 * p_.hidden);
      }
      T beta() const { return T(1); }

      micro::PeepholeBackStep describe(int64_t, int64_t t) const {
        const int64_t hidden = p_.hidden, width = 4 * hidden;
        const StridedRows<T>& d_out = b_.d_out;
        return {at_step(b_.gates, t, p_.batch, b0_, width),
                at_step(b_.c_all, t, p_.batch, b0_, hidden),
                previous_state(b_.c_all, b_.c0, t, p_.steps, p_.batch, b0_, hidden, p_.reverse),
                d_out.data + t * d_out.step_stride + b0_ * d_out.batch_stride,
                d_out.batch_stride,
                d_out.stride,
                at_step(b_.d_gates, t, p_.batch, b0_, width),
                b_.peep};
      }
      void first(micro::Isa isa, int64_t t, float* carry) const {
        const micro::PeepholeBackStep s = describe(0, t);
        if (isa == micro::Isa::Avx512) {
          micro::avx512::peephole_backward_first(s, carry, carry_c_, rows_, p_.hidden);
        } else {
          micro::avx2::peephole_backward_first(s, carry, carry_c_, rows_, p_.hidden);
        }
      }
      void step(micro::Isa isa, const micro::Panel& w, int64_t, int64_t t,
                const micro::PeepholeBackStep* next, float* carry) const {
        if (isa == micro::Isa::Avx512) {
          micro::avx512::peephole_backward_step(w, left(t), next, carry, carry_c_, rows_,
                                                p_.hidden);
        } else {
          micro::avx2::peephole_backward_step(w, left(t), next, carry, carry_c_, rows_,
                                              p_.hidden);
        }
      }

     private:
      const Backward& b_;
      const Pass& p_;
      int64_t b0_, rows_;
      T* carry_c_;              // (rows, H): d c, carried back through time
      std::vector<T> scratch_;  // a strided d_out row, gathered (library path)
      const T* cp_rows_ = nullptr;  // the rows' previous c, this step
    };
  };
};

// The peepholes p_i, p_f, p_o as one (3H) tensor; an absent one is zeros.
Tensor peepholes(const Tensor& p_i, const Tensor& p_f, const Tensor& p_o, int64_t hidden,
                 const Tensor& x) {
  const char* names[] = {"w_ci", "w_cf", "w_co"};
  std::vector<Tensor> parts;
  int index = 0;
  for (const Tensor* p : {&p_i, &p_f, &p_o}) {
    if (p->defined()) {
      TORCH_CHECK(p->dim() == 1 && p->size(0) == hidden, "peephole_lstm: ", names[index],
                  " must have shape (", hidden, ",), got ", p->sizes());
      TORCH_CHECK(p->device().is_cpu() && p->scalar_type() == x.scalar_type(), "peephole_lstm: ",
                  names[index], " must be a CPU tensor of x's dtype ", x.scalar_type(), ", got ",
                  p->scalar_type(), " on ", p->device());
    }
    parts.push_back(bias_or_zeros(*p, hidden, x));
    ++index;
  }
  return at::cat(parts).contiguous();
}

// d p (H) = sum over steps and rows of d (T, B, 4H)'s gate block `block` times the c each step
// read: its previous c for the input and forget gates (`previous`), its own for the output's.
Tensor peephole_grad(const Tensor& d_gates, int64_t block, const Tensor& c_all, const Tensor& c0,
                     bool previous, bool reverse) {
  const int64_t steps = c_all.size(0), hidden = c0.size(1);
  const Tensor d = d_gates.narrow(2, block * hidden, hidden);
  if (!previous || steps == 0) return d.mul(c_all).sum({0, 1});
  // c_{t-1}: c0 for the first processed step, else the neighbouring step's c
  const int64_t first = reverse ? steps - 1 : 0;
  Tensor grad = d.select(0, first).mul(c0).sum(0);
  if (steps > 1) {
    const Tensor later = d.narrow(0, reverse ? 0 : 1, steps - 1);
    grad.add_(later.mul(c_all.narrow(0, reverse ? 1 : 0, steps - 1)).sum({0, 1}));
  }
  return grad;
}

}  // namespace

// The pass of a call: its masked calls take the library path, whose per-row steps hold and
// carry masked rows (peephole_body.h's fused steps read no mask rows).
Pass peephole_pass(const Tensor& x, int64_t hidden, const Tensor& mask, bool reverse, bool zero) {
  Pass pass = make_pass(x, hidden, mask, reverse, zero);
  pass.fusable = pass.fusable && pass.mask == nullptr;
  return pass;
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> peephole_lstm_forward(
    const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_ih_in,
    const Tensor& w_hh_in, const Tensor& b_ih, const Tensor& b_hh, const Tensor& p_i,
    const Tensor& p_f, const Tensor& p_o, const Tensor& mask_in, bool reverse, bool zero,
    bool train) {
  check_inputs("peephole_lstm", 4, x_in, {h0_in, c0_in}, w_ih_in, w_hh_in, b_ih, b_hh, mask_in);
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor mask = contiguous_or_empty(mask_in);
  const int64_t hidden = w_hh.size(0) / 4;
  const Pass pass = peephole_pass(x, hidden, mask, reverse, zero);
  PeepholeLstm cell{h0, c0, w_hh, peepholes(p_i, p_f, p_o, hidden, x)};
  run_forward(cell, x, w_ih, b_ih, b_hh, pass, train);
  Tensor h_n = last_state(cell.out, h0, reverse, pass.zero ? mask : Tensor());
  if (!train) return {cell.out, h_n, cell.c_n, unused(x), unused(x)};
  return {cell.out, h_n, cell.c_n, cell.gates, cell.c_all};
}

std::array<Tensor, 10> peephole_lstm_backward(
    const Tensor& grad_out, const Tensor& grad_h_n, const Tensor& grad_c_n, const Tensor& x_in,
    const Tensor& h0_in, const Tensor& c0_in, const Tensor& w_ih_in, const Tensor& w_hh_in,
    const Tensor& p_i, const Tensor& p_f, const Tensor& p_o, const Tensor& out,
    const Tensor& gates, const Tensor& c_all, const Tensor& mask_in, bool reverse, bool zero,
    std::array<bool, 10> output_mask) {
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t hidden = w_hh.size(0) / 4;
  const Tensor peep = peepholes(p_i, p_f, p_o, hidden, x);
  Tensor dh = grad_h_n.contiguous().clone();
  Tensor dc = grad_c_n.contiguous().clone();
  Tensor d_gates = at::empty_like(gates);  // (T, B, 4H)
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "peephole_lstm_backward", [&] {
    backward_loop<PeepholeLstm, scalar_t>(
        {StridedRows<scalar_t>(grad_out), dh.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
         dc.data_ptr<scalar_t>(), c_all.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(),
         gates.data_ptr<scalar_t>(), d_gates.data_ptr<scalar_t>(), peep.data_ptr<scalar_t>()},
        peephole_pass(x, hidden, mask, reverse, zero));
  });
  const Tensor flat = d_gates.view({steps * batch, 4 * hidden});
  std::array<Tensor, 10> grads;
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
  const Tensor* given[] = {&p_i, &p_f, &p_o};
  for (int k = 0; k < 3; ++k) {  // the input, forget and output gates: blocks 0, 1, 3
    if (output_mask[7 + k] && given[k]->defined()) {
      grads[7 + k] = peephole_grad(d_gates, k == 2 ? 3 : k, c_all, c0, k < 2, reverse);
    }
  }
  return grads;
}

// The operator rnnkit::peephole_lstm (see cell.h). Forward tensors: x, h0, c0, w_ih, w_hh,
// b_ih, b_hh, w_ci, w_cf, w_co, mask; flags: reverse, zero_padding, train. Returns (out, h_n,
// c_n, gates (activated i, f, g, o), c_all).
Tensors peephole_lstm_forward_entry(const Tensors& t, const Flags& f) {
  return as_vector(peephole_lstm_forward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8],
                                         t[9], t[10], f[0], f[1], f[2]));
}
// tensors: grad_out, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_ci, w_cf, w_co,
// out, gates, c_all, mask
Tensors peephole_lstm_backward_entry(const Tensors& t, const Flags& f, const Flags& needs) {
  return as_vector(peephole_lstm_backward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[10],
                                          t[11], t[12], t[13], t[14], t[15], t[16], f[0], f[1],
                                          as_array<10>(needs)));
}

}  // namespace rnnkit

RNNKIT_CELL(peephole_lstm, rnnkit::peephole_lstm_forward_entry,
            rnnkit::peephole_lstm_backward_entry)
