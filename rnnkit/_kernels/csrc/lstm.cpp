// LSTM recurrence (gates i, f, g, o), compiled.
//
// With gx = x W_ih^T + b_ih + b_hh for all steps (one matrix product), per step:
//     i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of (gx + h W_hh^T)
//     c' = f * c + i * g;  h' = o * tanh(c')
// The projections are written into the gates buffer (T, B, 4H); each step adds h W_hh^T onto
// its slice (one small matrix product) and replaces it by the activated gates in the same pass
// that updates c and h. The backward pass's gate gradients are one fused pass per step.
//
// With an output projection w_hr (P, H) (torch.nn's proj_size): h' = (o * tanh(c')) W_hr^T,
// one more small product per step; h, h0 and out are P wide, W_hh is (4H, P), c stays H wide.
// Projected calls run the generic loops (the fused micro-kernel's panels are square: depth H).
#include "cell.h"
#include "common.h"
#include "fused_loops.h"

namespace rnnkit {
namespace {

// One row's gates: a (4H) holds the pre-activations i, f, g, o on entry and the activated gates
// on return; c' = f * c + i * g into cr, o * tanh(c') into m (h', or what W_hr projects).
// The gate slices of a row sit at offsets GCC cannot prove disjoint; without the pragma the
// loop stays scalar (measured: half the speed of a small LSTM step).
template <typename T>
inline void gates_forward(T* a, const T* cp, T* cr, T* m, int64_t hidden) {
#pragma omp simd
  for (int64_t j = 0; j < hidden; ++j) {
    const T ig = sigmoid(a[j]);
    const T fg = sigmoid(a[hidden + j]);
    const T gg = tanh_(a[2 * hidden + j]);
    const T og = sigmoid(a[3 * hidden + j]);
    const T cj = fg * cp[j] + ig * gg;
    a[j] = ig;
    a[hidden + j] = fg;
    a[2 * hidden + j] = gg;
    a[3 * hidden + j] = og;
    cr[j] = cj;
    m[j] = og * tanh_(cj);
  }
}

// The backward pass of one row's gates: g the activated gates (4H), ct = c', cp = c; total(j)
// the gradient of o * tanh(c')_j; gc carries d c' in and d c out. da receives the gradients of
// the pre-activations. With keep_m, m receives o * tanh(c') (for W_hr's gradient).
template <bool keep_m, typename T, typename Total>
inline void gates_backward(const T* g, const T* ct, const T* cp, T* da, T* gc, T* m,
                           int64_t hidden, const Total& total) {
#pragma omp simd  // as in the forward pass
  for (int64_t j = 0; j < hidden; ++j) {
    const T ig = g[j], fg = g[hidden + j], gg = g[2 * hidden + j], og = g[3 * hidden + j];
    const T dm = total(j);
    const T tc = tanh_(ct[j]);
    const T dct = gc[j] + dm * og * (T(1) - tc * tc);
    da[j] = dct * gg * ig * (T(1) - ig);
    da[hidden + j] = dct * cp[j] * fg * (T(1) - fg);
    da[2 * hidden + j] = dct * ig * (T(1) - gg * gg);
    da[3 * hidden + j] = dm * tc * og * (T(1) - og);
    gc[j] = dct * fg;
    if constexpr (keep_m) m[j] = og * tc;
  }
}

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
        const T* cp = c + r * hidden;
        const T* hp = h + r * hidden;
        T* cr = c_new + r * hidden;
        T* hr = o + r * hidden;
        if (mask != nullptr && !mask[t * batch + b0 + r]) {  // held
          std::copy(cp, cp + hidden, cr);
          std::copy(hp, hp + hidden, hr);
          continue;
        }
        gates_forward(a + r * width, cp, cr, hr, hidden);
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
        gates_backward<false>(g, ct, cp, dar, gc, static_cast<T*>(nullptr), hidden,
                              [&](int64_t j) {
                                const T total = gh[j] + go[j];
                                gh[j] = T(0);
                                return total;
                              });
      }
      recurrent.multiply(da, width, T(1), carry_h, hidden);
    }
  });
}

// The projected forward pass (w_hr (P, H)): as forward_loop, with h (P wide) = m W_hr^T after
// each step's gates, m = o * tanh(c) (rows, H) in a per-thread buffer. out (T, B, P), h0 (B, P),
// w_hh (4H, P).
template <typename T>
void projected_forward_loop(T* gates, T* out, T* c_all, T* c_n, const T* h0, const T* c0,
                            const T* w_hh, const T* w_hr, const bool* mask, int64_t steps,
                            int64_t batch, int64_t hidden, int64_t proj, bool reverse,
                            bool zero) {
  const int64_t width = 4 * hidden;
  const double flops = 2.0 * steps * batch * (width + proj) * hidden;
  over_batch(batch, flops, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<T> c_buffer(c_all == nullptr ? 2 * rows * hidden : 0);  // as in forward_loop
    std::vector<T> m(rows * hidden);
    const T* h = h0 + b0 * proj;
    const T* c = c0 + b0 * hidden;
    T* previous = nullptr;
    const bool* held = nullptr;
    const PackedRight<T> recurrent(Op::T, rows, width, proj, w_hh, proj);    // @ W_hh^T
    const PackedRight<T> projection(Op::T, rows, proj, hidden, w_hr, hidden);  // @ W_hr^T
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s;
      T* a = at_step(gates, t, batch, b0, width);  // (rows, 4H)
      recurrent.multiply(h, proj, T(1), a, width);
      T* o = at_step(out, t, batch, b0, proj);
      T* c_new = c_all == nullptr ? c_buffer.data() + (s % 2) * rows * hidden
                                  : at_step(c_all, t, batch, b0, hidden);
      const bool* keep = mask == nullptr ? nullptr : mask + t * batch + b0;
      for (int64_t r = 0; r < rows; ++r) {
        const T* cp = c + r * hidden;
        T* cr = c_new + r * hidden;
        if (keep != nullptr && !keep[r]) {  // held (h below, after the product)
          std::copy(cp, cp + hidden, cr);
          continue;
        }
        gates_forward(a + r * width, cp, cr, m.data() + r * hidden, hidden);
      }
      projection.multiply(m.data(), hidden, T(0), o, proj);  // (rows, P)
      if (keep != nullptr) {
        for (int64_t r = 0; r < rows; ++r) {
          if (!keep[r]) std::copy(h + r * proj, h + (r + 1) * proj, o + r * proj);
        }
        if (zero && held != nullptr) zero_rows(previous, held, rows, proj);
        held = keep;
      }
      h = previous = o;
      c = c_new;
    }
    if (zero && held != nullptr) zero_rows(previous, held, rows, proj);
    std::copy(c, c + rows * hidden, c_n + b0 * hidden);
  });
}

// The projected backward pass: dh (B, P) and dc (B, H) enter as d h_n, d c_n and leave as
// d h0, d c0. Per step, d_proj[t] (rows, P) receives the gradient of the step's h (0 where
// held), m_all[t] (rows, H) its m = o * tanh(c), so that d W_hr = sum_t d_proj[t]^T m_all[t]
// is one product afterwards; d m = d_proj[t] W_hr enters the gates' backward pass.
template <typename T>
void projected_backward_loop(const StridedRows<T>& d_out, T* dh, T* dc, const T* c_all,
                             const T* c0, const T* gates, const T* w_hh, const T* w_hr,
                             const bool* mask, T* d_gates, T* d_proj, T* m_all, int64_t steps,
                             int64_t batch, int64_t hidden, int64_t proj, bool reverse,
                             bool zero) {
  const int64_t width = 4 * hidden;
  const double flops = 2.0 * steps * batch * (width + proj) * hidden;
  over_batch(batch, flops, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    T* carry_h = dh + b0 * proj;  // (rows, P)
    T* carry_c = dc + b0 * hidden;
    std::vector<T> scratch(proj);  // a strided d_out row, gathered
    std::vector<T> dm(rows * hidden);
    const PackedRight<T> recurrent(Op::N, rows, proj, width, w_hh, proj);       // @ W_hh
    const PackedRight<T> unprojection(Op::N, rows, hidden, proj, w_hr, hidden);  // @ W_hr
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? s : steps - 1 - s;
      const bool* keep = mask == nullptr ? nullptr : mask + t * batch + b0;
      T* dp = at_step(d_proj, t, batch, b0, proj);
      for (int64_t r = 0; r < rows; ++r) {
        const T* go = d_out.row(t, b0 + r, scratch.data(), proj);
        T* gh = carry_h + r * proj;
        T* dpr = dp + r * proj;
        if (keep != nullptr && !keep[r]) {  // held: gradients pass through
          if (!zero) {  // with zero padding the output here was a constant
            for (int64_t j = 0; j < proj; ++j) gh[j] += go[j];
          }
          std::fill(dpr, dpr + proj, T(0));
          continue;
        }
        for (int64_t j = 0; j < proj; ++j) {
          dpr[j] = gh[j] + go[j];
          gh[j] = T(0);
        }
      }
      unprojection.multiply(dp, proj, T(0), dm.data(), hidden);  // (rows, H)
      const T* cp_rows = previous_state(c_all, c0, t, steps, batch, b0, hidden, reverse);
      T* da = at_step(d_gates, t, batch, b0, width);
      T* mt = at_step(m_all, t, batch, b0, hidden);
      for (int64_t r = 0; r < rows; ++r) {
        T* dar = da + r * width;
        T* mr = mt + r * hidden;
        if (keep != nullptr && !keep[r]) {
          std::fill(dar, dar + width, T(0));
          std::fill(mr, mr + hidden, T(0));
          continue;
        }
        const T* dmr = dm.data() + r * hidden;
        gates_backward<true>(at_step(gates, t, batch, b0 + r, width),
                             at_step(c_all, t, batch, b0 + r, hidden), cp_rows + r * hidden,
                             dar, carry_c + r * hidden, mr, hidden,
                             [&](int64_t j) { return dmr[j]; });
      }
      recurrent.multiply(da, width, T(1), carry_h, proj);
    }
  });
}

struct Forward {
  Tensor out, gates, c_all, c_n;
};

Forward run_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                    const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                    const Tensor& w_hr, const Tensor& mask, bool reverse, bool keep_for_backward,
                    bool zero) {
  const int64_t steps = x.size(0), batch = x.size(1), hidden = w_hh.size(0) / 4;
  const int64_t proj = w_hh.size(1);  // the width of h: P with w_hr, else H
  Forward f;
  f.out = at::empty({steps, batch, proj}, x.options());
  f.c_n = at::empty({batch, hidden}, x.options());
  if (w_hr.defined()) {
    f.gates = project_inputs(x, w_ih, b_ih, b_hh);  // (T, B, 4H)
    if (keep_for_backward) f.c_all = at::empty({steps, batch, hidden}, x.options());
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_projected_forward", [&] {
      projected_forward_loop(
          f.gates.data_ptr<scalar_t>(), f.out.data_ptr<scalar_t>(),
          keep_for_backward ? f.c_all.data_ptr<scalar_t>() : nullptr, f.c_n.data_ptr<scalar_t>(),
          h0.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(),
          w_hr.data_ptr<scalar_t>(), mask.defined() ? mask.data_ptr<bool>() : nullptr, steps,
          batch, hidden, proj, reverse, zero);
    });
    return f;
  }
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
    const Tensor& w_hh_in, const Tensor& b_ih, const Tensor& b_hh, const Tensor& w_hr_in,
    const Tensor& mask_in, bool reverse, bool zero, bool train) {
  check_inputs("lstm", 4, x_in, {h0_in, c0_in}, w_ih_in, w_hh_in, b_ih, b_hh, mask_in, w_hr_in);
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor w_hr = contiguous_or_empty(w_hr_in);
  const Tensor mask = contiguous_or_empty(mask_in);
  zero = zero && mask.defined();
  Forward f = run_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, mask, reverse, train, zero);
  Tensor h_n = last_state(f.out, h0, reverse, zero ? mask : Tensor());
  if (!train) return {f.out, h_n, f.c_n, unused(x), unused(x)};
  return {f.out, h_n, f.c_n, f.gates, f.c_all};
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
  const int64_t hidden = w_hh.size(0) / 4, proj = w_hh.size(1);
  Tensor dh = grad_h_n.contiguous().clone();
  Tensor dc = grad_c_n.contiguous().clone();
  Tensor d_gates = at::empty_like(gates);  // (T, B, 4H)
  Tensor d_proj, m_all;  // projected: (T, B, P) and (T, B, H), for W_hr's gradient
  if (w_hr.defined()) {
    d_proj = at::empty({steps, batch, proj}, x.options());
    m_all = at::empty({steps, batch, hidden}, x.options());
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_backward", [&] {
    const bool* held = mask.defined() ? mask.data_ptr<bool>() : nullptr;
    if (w_hr.defined()) {
      projected_backward_loop(
          StridedRows<scalar_t>(grad_out), dh.data_ptr<scalar_t>(), dc.data_ptr<scalar_t>(),
          c_all.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(), gates.data_ptr<scalar_t>(),
          w_hh.data_ptr<scalar_t>(), w_hr.data_ptr<scalar_t>(), held,
          d_gates.data_ptr<scalar_t>(), d_proj.data_ptr<scalar_t>(), m_all.data_ptr<scalar_t>(),
          steps, batch, hidden, proj, reverse, zero);
      return;
    }
    backward_loop(StridedRows<scalar_t>(grad_out), dh.data_ptr<scalar_t>(),
                  dc.data_ptr<scalar_t>(), c_all.data_ptr<scalar_t>(), c0.data_ptr<scalar_t>(),
                  gates.data_ptr<scalar_t>(), w_hh.data_ptr<scalar_t>(), held,
                  d_gates.data_ptr<scalar_t>(), steps, batch, hidden, reverse, zero);
  });
  const Tensor flat = d_gates.view({steps * batch, 4 * hidden});
  std::array<Tensor, 8> grads;
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
