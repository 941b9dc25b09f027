// The time loops of the cells not yet on loop.h's template, on the fused micro-kernel steps
// (microkernel.h): what their forward and backward loops run when fused::takes() says so.
//
// The recurrent weights are packed once per call, before the threads start, and shared by them
// read-only; the batch is split across threads for the whole loop as everywhere in the compiled
// kernels (over_batch: no synchronisation per step). Buffers and their layouts are the cells'
// own, so the backward pass reads what either forward pass wrote.
#pragma once

#include "common.h"
#include "loop.h"
#include "microkernel.h"

namespace rnnkit {
namespace fused {

using micro::Isa;

// ---------------------------------------------------------------------------------------------
// LSTM. gates (T, B, 4H): projections in, activated gates out; out (T, B, H) the states h;
// c_all (T, B, H) every c when not null (training), else two per-thread buffers; c_n (B, H).
// `panel` is W_hh packed by gate_panel (4 gates); c0 may be c_n itself (a chunk continuing
// the previous one: each thread reads its rows before it writes them).
inline void lstm_forward(const micro::Panel& panel, float* gates, float* out, float* c_all,
                         float* c_n, const float* h0, const float* c0, int64_t steps,
                         int64_t batch, int64_t hidden, bool reverse) {
  const Isa isa = micro::fused_isa();
  const int64_t width = 4 * hidden;
  over_batch(batch, 2.0 * steps * batch * width * hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<float> c_buffer(c_all == nullptr ? 2 * rows * hidden : 0);
    const float* h = h0 + b0 * hidden;
    const float* c = c0 + b0 * hidden;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s;
      float* o = at_step(out, t, batch, b0, hidden);
      float* c_new = c_all == nullptr ? c_buffer.data() + (s % 2) * rows * hidden
                                      : at_step(c_all, t, batch, b0, hidden);
      micro::lstm_forward_step(isa, panel, h, c, at_step(gates, t, batch, b0, width), width, o,
                               c_new, rows, hidden);
      h = o;
      c = c_new;
    }
    std::copy(c, c + rows * hidden, c_n + b0 * hidden);
  });
}

inline void lstm_forward(float* gates, float* out, float* c_all, float* c_n, const float* h0,
                         const float* c0, const float* w_hh, int64_t steps, int64_t batch,
                         int64_t hidden, bool reverse) {
  lstm_forward(micro::gate_panel(micro::fused_isa(), w_hh, 4, hidden), gates, out, c_all, c_n,
               h0, c0, steps, batch, hidden, reverse);
}

// dh, dc: d h_n, d c_n in, d h0, d c0 out; d_gates (T, B, 4H) receives dA of every step; d_out
// read with its own strides.
inline void lstm_backward(const StridedRows<float>& d_out, float* dh, float* dc,
                          const float* c_all, const float* c0, const float* gates,
                          const float* w_hh, float* d_gates, int64_t steps, int64_t batch,
                          int64_t hidden, bool reverse) {
  if (steps == 0) return;
  const Isa isa = micro::fused_isa();
  const int64_t width = 4 * hidden;
  const micro::Panel panel = micro::backward_panel(isa, w_hh, 4, hidden);
  over_batch(batch, 2.0 * steps * batch * width * hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    auto order = [&](int64_t s) { return reverse ? s : steps - 1 - s; };  // processing order
    auto step = [&](int64_t t) {
      return micro::LstmBackStep{
          at_step(gates, t, batch, b0, width), at_step(c_all, t, batch, b0, hidden),
          previous_state(c_all, c0, t, steps, batch, b0, hidden, reverse),
          d_out.data + t * d_out.step_stride + b0 * d_out.batch_stride, d_out.batch_stride,
          d_out.stride, at_step(d_gates, t, batch, b0, width)};
    };
    float* carry_h = dh + b0 * hidden;
    float* carry_c = dc + b0 * hidden;
    micro::lstm_backward_first(isa, step(order(0)), carry_h, carry_c, rows, hidden);
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = order(s);
      const bool last = s + 1 == steps;
      const micro::LstmBackStep next = step(order(last ? s : s + 1));
      micro::lstm_backward_step(isa, panel, at_step(d_gates, t, batch, b0, width),
                                last ? nullptr : &next, carry_h, carry_c, rows, hidden);
    }
  });
}

}  // namespace fused
}  // namespace rnnkit
