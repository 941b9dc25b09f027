// The time loops of the dense float32 cells on the fused micro-kernel steps (microkernel.h):
// what the cells' forward and backward loops run when fused::takes() says so, the library
// product and its separate gate pass otherwise (float64, masked calls, CPUs without AVX2).
//
// The recurrent weights are packed once per call, before the threads start, and shared by them
// read-only; the batch is split across threads for the whole loop as everywhere in the compiled
// kernels (over_batch: no synchronisation per step). Buffers and their layouts are the cells'
// own, so the backward pass reads what either forward pass wrote.
#pragma once

#include "common.h"
#include "microkernel.h"

#include <memory>

namespace rnnkit {
namespace fused {

using micro::Isa;

// Whether the fused loops take a call: float32 on a CPU with AVX2 or AVX-512, no mask.
template <typename T>
inline bool takes(const bool* mask) {
  return std::is_same_v<T, float> && mask == nullptr && micro::fused_isa() != Isa::Portable;
}

// The name of the instruction set the fused loops run on here ("avx512", "avx2", "portable":
// none), for the benchmark's report.
inline const char* isa_name() { return vmath::isa_name(micro::fused_isa()); }

// ---------------------------------------------------------------------------------------------
// The input projection x W_ih^T + bias (+ bias2) of float32 rows. With AVX-512 on the
// micro-kernel, W_ih packed once: the library product (MKL) ran about 200 GFLOP/s on these
// shapes on the AVX-512 machine, and the bench's GRU/LSTM medium, long and large inference
// 1.2-1.5x faster on the micro-kernel's. With AVX2 the library's: the AVX2 micro-kernel's
// 2-row blocks made the same rows 0.88-0.97x as fast (RNNKIT_ISA=avx2 on that machine).
class Projection {
 public:
  Projection(const Tensor& w, const Tensor& bias, const Tensor& bias2)
      : isa_(micro::fused_isa()), cols_(w.size(0)), depth_(w.size(1)), w_(w), bias_(bias),
        bias2_(bias2) {
    if (isa_ == Isa::Avx512) {
      panel_.reset(new micro::Panel(
          micro::transposed_panel(isa_, w.data_ptr<float>(), cols_, depth_)));
      row_ = summed_bias(bias, bias2, cols_);
    }
  }

  // out (rows, cols) = x (rows, depth) @ W^T + bias, the rows split across the threads
  void operator()(const float* x, int64_t rows, float* out) const {
    if (panel_ == nullptr) {
      return library_projection(out, x, rows, depth_, w_, bias_, bias2_);
    }
    over_batch(rows, 2.0 * rows * depth_ * cols_, [&](int64_t r0, int64_t r1) {
      micro::product(isa_, *panel_, x + r0 * depth_, depth_, depth_, r1 - r0,
                     row_.empty() ? nullptr : row_.data(), out + r0 * cols_, cols_, cols_);
    });
  }

 private:
  Isa isa_;
  int64_t cols_, depth_;
  Tensor w_, bias_, bias2_;
  std::unique_ptr<micro::Panel> panel_;  // AVX-512 only
  std::vector<float> row_;               // bias + bias2, for the micro-kernel's epilogue
};

// A dense float32 pass in chunks of steps: each chunk's input projections are formed right
// before run(gates, t0, n, first) steps through them, so they are still in cache. By default
// into one (chunk, B, G) buffer that every chunk reuses (inference: no (T, B, G) buffer is
// allocated, and page-faulted, at all); with `into`, into that (T, B, G) buffer's own steps
// (training, whose backward pass reads them; the Elman cell, whose projections become its
// outputs). Chunks go in processing order (from the end with reverse).
template <typename Run>
void in_chunks(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& bias2,
               int64_t chunk, bool reverse, const Run& run, float* into = nullptr) {
  const int64_t steps = x.size(0), batch = x.size(1), features = x.size(2);
  const int64_t step_size = batch * w.size(0);
  const Projection project(w, bias, bias2);
  Tensor buffer = into == nullptr ? at::empty({chunk, batch, w.size(0)}, x.options()) : Tensor();
  for (int64_t done = 0; done < steps; done += chunk) {
    const int64_t n = std::min(chunk, steps - done);
    const int64_t t0 = reverse ? steps - done - n : done;
    float* gates = into == nullptr ? buffer.data_ptr<float>() : into + t0 * step_size;
    project(x.data_ptr<float>() + t0 * batch * features, n * batch, gates);
    run(gates, t0, n, done == 0);
  }
}

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

// ---------------------------------------------------------------------------------------------
// GRU. gates (T, B, 3H): gi in, (r, z, n) out; hn_all (T, B, H) gh_n of every step when not
// null; b_hh (3H) never null (zeros when absent).
// `panel` is W_hh packed by gate_panel (3 gates).
inline void gru_forward(const micro::Panel& panel, float* gates, float* out, float* hn_all,
                        const float* h0, const float* b_hh, int64_t steps, int64_t batch,
                        int64_t hidden, bool reverse) {
  const Isa isa = micro::fused_isa();
  const int64_t width = 3 * hidden;
  over_batch(batch, 2.0 * steps * batch * width * hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    const float* h = h0 + b0 * hidden;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s;
      float* o = at_step(out, t, batch, b0, hidden);
      micro::gru_forward_step(isa, panel, h, b_hh, at_step(gates, t, batch, b0, width), width,
                              hn_all == nullptr ? nullptr : at_step(hn_all, t, batch, b0, hidden),
                              o, rows, hidden);
      h = o;
    }
  });
}

inline void gru_forward(float* gates, float* out, float* hn_all, const float* h0,
                        const float* w_hh, const float* b_hh, int64_t steps, int64_t batch,
                        int64_t hidden, bool reverse) {
  gru_forward(micro::gate_panel(micro::fused_isa(), w_hh, 3, hidden), gates, out, hn_all, h0,
              b_hh, steps, batch, hidden, reverse);
}

// dh: d h_n in, d h0 out; d_gi (T, B, 3H), d_ghn (T, B, H) receive the gradients of gi and
// gh_n (d_ghn may be d_out itself: each row is read before it is written).
inline void gru_backward(const float* d_out, float* dh, const float* out, const float* h0,
                         const float* gates, const float* hn_all, const float* w_hh,
                         float* d_gi, float* d_ghn, int64_t steps, int64_t batch,
                         int64_t hidden, bool reverse) {
  if (steps == 0) return;
  const Isa isa = micro::fused_isa();
  const int64_t width = 3 * hidden;
  const micro::Panel panel = micro::backward_panel(isa, w_hh, 3, hidden);
  over_batch(batch, 2.0 * steps * batch * width * hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    std::vector<float> buffers(2 * rows * width);  // d gh of this step and of the next back
    auto order = [&](int64_t s) { return reverse ? s : steps - 1 - s; };
    auto step = [&](int64_t s) {
      const int64_t t = order(s);
      return micro::GruBackStep{
          at_step(gates, t, batch, b0, width), at_step(hn_all, t, batch, b0, hidden),
          previous_state(out, h0, t, steps, batch, b0, hidden, reverse),
          at_step(d_out, t, batch, b0, hidden), at_step(d_gi, t, batch, b0, width),
          at_step(d_ghn, t, batch, b0, hidden), buffers.data() + (s % 2) * rows * width};
    };
    float* carry = dh + b0 * hidden;
    micro::gru_backward_first(isa, step(0), carry, rows, hidden);
    for (int64_t s = 0; s < steps; ++s) {
      const bool last = s + 1 == steps;
      const micro::GruBackStep next = step(last ? s : s + 1);
      micro::gru_backward_step(isa, panel, buffers.data() + (s % 2) * rows * width,
                               last ? nullptr : &next, carry, rows, hidden);
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Elman. out (T, B, H): projections in, states out.
// `panel` is W_hh packed by elman_forward_panel.
inline void elman_forward(const micro::Panel& panel, float* out, const float* h0, int64_t steps,
                          int64_t batch, int64_t hidden, bool reverse, bool relu) {
  const Isa isa = micro::fused_isa();
  over_batch(batch, 2.0 * steps * batch * hidden * hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    const float* h = h0 + b0 * hidden;
    for (int64_t s = 0; s < steps; ++s) {
      const int64_t t = reverse ? steps - 1 - s : s;
      float* o = at_step(out, t, batch, b0, hidden);
      micro::elman_forward_step(isa, panel, h, o, rows, hidden, relu);
      h = o;
    }
  });
}

inline void elman_forward(float* out, const float* h0, const float* w_hh, int64_t steps,
                          int64_t batch, int64_t hidden, bool reverse, bool relu) {
  elman_forward(micro::elman_forward_panel(micro::fused_isa(), w_hh, hidden), out, h0, steps,
                batch, hidden, reverse, relu);
}

// dh: d h_n in, d h0 out; d_pre (T, B, H) receives d pre_t (may be d_out itself).
inline void elman_backward(const float* d_out, float* dh, const float* out, const float* w_hh,
                           float* d_pre, int64_t steps, int64_t batch, int64_t hidden,
                           bool reverse, bool relu) {
  if (steps == 0) return;
  const Isa isa = micro::fused_isa();
  const micro::Panel panel = micro::backward_panel(isa, w_hh, 1, hidden);
  over_batch(batch, 2.0 * steps * batch * hidden * hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    auto order = [&](int64_t s) { return reverse ? s : steps - 1 - s; };
    auto step = [&](int64_t t) {
      return micro::ElmanBackStep{at_step(out, t, batch, b0, hidden),
                                  at_step(d_out, t, batch, b0, hidden),
                                  at_step(d_pre, t, batch, b0, hidden)};
    };
    float* carry = dh + b0 * hidden;
    micro::elman_backward_first(isa, step(order(0)), carry, rows, hidden, relu);
    for (int64_t s = 0; s < steps; ++s) {
      const bool last = s + 1 == steps;
      const micro::ElmanBackStep next = step(order(last ? s : s + 1));
      micro::elman_backward_step(isa, panel, at_step(d_pre, order(s), batch, b0, hidden),
                                 last ? nullptr : &next, carry, rows, hidden, relu);
    }
  });
}

}  // namespace fused
}  // namespace rnnkit
