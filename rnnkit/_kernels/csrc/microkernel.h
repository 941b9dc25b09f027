// The recurrent step of the float32 cells as a register-blocked micro-kernel whose output tile
// goes through the gate math while still in registers, on recurrent weights packed once per
// call in the layout the kernel reads.
//
// The product. Every step is out (rows, N) = a (rows, K) @ B (K, N) with B the recurrent
// weights (forward: W_hh^T, N = G H gate columns; backward: W_hh, N = H units). The N columns
// are cut into groups of C vectors of L lanes (L = 16 on AVX-512, 8 on AVX2); a Panel holds B
// group by group and k by k: panel[group][k][c][lane], so one k of one group is C L contiguous
// floats, read with C vector loads. A group's weights stay in L1 while the kernel walks the
// row blocks, and all of them in L2 across steps. The kernel keeps R x C accumulators (R rows
// of the block times C vectors): per k, C loads, R broadcasts of a[r][k] and R C fused
// multiply-adds. AVX-512 (32 registers) takes R = 6 at C = 4 and R = 8 at C = 3, AVX2 (16)
// R = 2 and 3; rows come in equal blocks (8 rows: 4 + 4, not 6 + 2).
//
// The epilogue. The accumulators are handed to the cell's epilogue, which adds the input
// projection, applies the nonlinearities (vmath.h) and writes the step's outputs:
//   LSTM forward: C = the 4 gates (i, f, g, o) of one tile of hidden units;
//   LSTM backward: C = 4 tiles of units of d h_{t-1} = dA_t W_hh, and the epilogue at once
//     forms dA_{t-1} of those units (the next step back), so the product of every step is
//     followed by no separate pass over its gates.
//
// Stacked steps. With AVX-512, where the inputs are narrow (loop.h's fused::stacks), a forward
// step's product runs over (x_t, h) @ [W_ih, W_hh]^T: the panel holds W_ih^T's D rows over
// W_hh^T's H rows (stacked_gate_panel, stacked_unit_panel), the accumulators start at the
// biases, and the epilogue gets the whole pre-activation: no input projection is written to a
// buffer and read back, and no projection pass runs beside the steps. The GRU keeps n's x and h parts in two
// accumulators (n = tanh(x W_in^T + b_in + r (h W_hn^T + b_hn))): C = 3 columns a depth, A = 4
// accumulators.
//
// Instruction sets. Each one has its own namespace compiled for it (#pragma GCC target), so a
// build on any x86-64 machine carries both; callers pick one at run time with fused_isa() and
// never call into a namespace the CPU lacks. Everywhere else (float64, other CPUs, masked
// calls) the cells use their library-product path.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "vmath.h"

namespace rnnkit {
namespace micro {

using vmath::Isa;

// The instruction set of the fused steps here: the CPU's widest (vmath::detected_isa), lowered
// by RNNKIT_ISA=avx2 or RNNKIT_ISA=portable (read once; for tests and comparisons). Portable
// means "no fused step": callers take their library-product path.
inline Isa fused_isa() {
  static const Isa isa = [] {
    Isa best = vmath::detected_isa();
    const char* cap = std::getenv("RNNKIT_ISA");
    if (cap != nullptr) {
      if (std::strcmp(cap, "portable") == 0) best = Isa::Portable;
      if (std::strcmp(cap, "avx2") == 0 && best == Isa::Avx512) best = Isa::Avx2;
    }
    return best;
  }();
  return isa;
}

inline int lanes(Isa isa) { return isa == Isa::Avx512 ? 16 : isa == Isa::Avx2 ? 8 : 1; }

// B (depth, N) packed for the kernel: `groups` groups of `cols` vectors of `lanes` lanes,
// column(group, c, lane) giving the column of B that lane holds (or -1 for a zero pad) and
// value(k, column) the entry.
class Panel {
 public:
  template <typename Column, typename Value>
  Panel(int lanes, int cols, int64_t depth, int64_t groups, const Column& column,
        const Value& value)
      : stride_(depth * cols * lanes), groups_(groups),
        data_(static_cast<size_t>(groups * stride_) + 16) {
    float* out = begin();
    for (int64_t g = 0; g < groups; ++g) {
      for (int64_t k = 0; k < depth; ++k) {
        for (int c = 0; c < cols; ++c) {
          for (int l = 0; l < lanes; ++l, ++out) {
            const int64_t j = column(g, c, l);
            *out = j < 0 ? 0.0f : value(k, j);
          }
        }
      }
    }
  }
  Panel(const Panel&) = delete;
  Panel& operator=(const Panel&) = delete;

  const float* group(int64_t g) const { return begin() + g * stride_; }
  int64_t groups() const { return groups_; }

 private:
  float* begin() const {  // 64-byte aligned, so the vector loads never split a cache line
    const auto p = reinterpret_cast<uintptr_t>(data_.data());
    return reinterpret_cast<float*>((p + 63) & ~uintptr_t{63});
  }
  int64_t stride_, groups_;
  std::vector<float> data_;
};

// The recurrent weights W (gates H, H), row gate q H + j for unit j, packed for a forward step
// (out = h W^T): group = one tile of units, c = the gate (C = gates: 4 LSTM, 3 GRU).
inline Panel gate_panel(Isa isa, const float* w, int gates, int64_t hidden) {
  const int l = lanes(isa);
  return Panel(l, gates, hidden, (hidden + l - 1) / l,
               [=](int64_t g, int c, int lane) {
                 const int64_t j = g * l + lane;
                 return j < hidden ? c * hidden + j : -1;
               },
               [=](int64_t k, int64_t j) { return w[j * hidden + k]; });
}
// A stacked panel: W_ih (gates H, D) over W_hh (gates H, H) as one right factor of depth
// D + H, (x_t, h) @ [W_ih, W_hh]^T, grouped as gate_panel (group = one tile of units, c = the
// gate): the stacked steps' input projection inside their product.
inline Panel stacked_gate_panel(Isa isa, const float* w_ih, int64_t features, const float* w_hh,
                                int gates, int64_t hidden) {
  const int l = lanes(isa);
  return Panel(l, gates, features + hidden, (hidden + l - 1) / l,
               [=](int64_t g, int c, int lane) {
                 const int64_t j = g * l + lane;
                 return j < hidden ? c * hidden + j : -1;
               },
               [=](int64_t k, int64_t j) {
                 return k < features ? w_ih[j * features + k] : w_hh[j * hidden + k - features];
               });
}
// The biases of a stacked gate step (LSTM, GRU), `blocks` (A) vectors a tile of units: block q,
// unit j is bias[q H + j] (a panel of depth 1, one group per tile of units).
inline Panel stacked_gate_bias(Isa isa, const std::vector<float>& bias, int blocks,
                               int64_t hidden) {
  const int l = lanes(isa);
  return Panel(l, blocks, 1, (hidden + l - 1) / l,
               [=](int64_t g, int c, int lane) {
                 const int64_t j = g * l + lane;
                 return j < hidden ? c * hidden + j : -1;
               },
               [&](int64_t, int64_t j) { return bias[j]; });
}
// A right factor of H unit columns and `depth` rows, value(k, j), packed in groups of 4 tiles of
// units (C = 4): the backward steps (d h_{t-1} = d pre_t W, depth gates H) and the Elman
// forward step (h W^T, depth H).
template <typename Value>
Panel unit_panel(Isa isa, int64_t depth, int64_t hidden, const Value& value) {
  const int l = lanes(isa);
  return Panel(l, 4, depth, (hidden + 4 * l - 1) / (4 * l),
               [=](int64_t g, int c, int lane) {
                 const int64_t j = (g * 4 + c) * l + lane;
                 return j < hidden ? j : -1;
               },
               value);
}
// The Elman cell's stacked panel, W_ih (H, D) over W_hh (H, H) grouped as unit_panel, and its
// bias (H) likewise (depth 1).
inline Panel stacked_unit_panel(Isa isa, const float* w_ih, int64_t features, const float* w_hh,
                                int64_t hidden) {
  return unit_panel(isa, features + hidden, hidden, [=](int64_t k, int64_t j) {
    return k < features ? w_ih[j * features + k] : w_hh[j * hidden + k - features];
  });
}
inline Panel stacked_unit_bias(Isa isa, const std::vector<float>& bias, int64_t hidden) {
  return unit_panel(isa, 1, hidden, [&](int64_t, int64_t j) { return bias[j]; });
}
// W (N, depth) for the product a (rows, depth) @ W^T: the input projection x W_ih^T.
inline Panel transposed_panel(Isa isa, const float* w, int64_t n, int64_t depth) {
  return unit_panel(isa, depth, n, [=](int64_t k, int64_t j) { return w[j * depth + k]; });
}
// W (gates H, H) for the backward product d pre (rows, gates H) @ W.
inline Panel backward_panel(Isa isa, const float* w, int gates, int64_t hidden) {
  return unit_panel(isa, gates * hidden, hidden,
                    [=](int64_t m, int64_t j) { return w[m * hidden + j]; });
}
// W (H, H) for the Elman forward product h @ W^T.
inline Panel elman_forward_panel(Isa isa, const float* w, int64_t hidden) {
  return unit_panel(isa, hidden, hidden,
                    [=](int64_t k, int64_t j) { return w[j * hidden + k]; });
}

// One step back of the LSTM, for the `rows` rows of this thread. `now` is step t (the one
// whose dA_t is known), `next` the step processed after it (t - 1 forward), or null when t is
// the last: then d h_{t-1} = dA_t W_hh is written to dh (rows, H), which is d h0.
struct LstmBackStep {
  const float* gates;  // (rows, 4H) activated i, f, g, o
  const float* c;      // (rows, H) c of this step
  const float* c_prev; // (rows, H) c of the step before it (c0 for the first)
  const float* go;     // this step's output gradient, row 0 of the thread; rows at go_rows
  int64_t go_rows;     // row stride of go
  int64_t go_stride;   // element stride of go (1, or 0 for a broadcast gradient)
  float* d_gates;      // (rows, 4H) receives dA of this step
};

// One step back of the GRU: as LstmBackStep, with d gh (rows, 3H) the left factor of this
// step's product (d gh = d gi but for the n part, d an r), written here.
struct GruBackStep {
  const float* gates;   // (rows, 3H) r, z, n
  const float* hn;      // (rows, H) gh_n (with b_hh)
  const float* h_prev;  // (rows, H) the state this step started from
  const float* go;      // (rows, H) output gradient (may be d_ghn itself: read first)
  float* d_gi;          // (rows, 3H)
  float* d_ghn;         // (rows, H)
  float* dgh;           // (rows, 3H)
};

// One step back of the Elman RNN: d pre = (d h + go) act'(h), act' from h itself.
struct ElmanBackStep {
  const float* h;   // (rows, H) this step's state
  const float* go;  // (rows, H) output gradient (may be d_pre itself: read first)
  float* d_pre;     // (rows, H)
};

// ---------------------------------------------------------------------------------------------
// The kernels, once per instruction set (that namespace's vmath functions in scope).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")
namespace avx512 {
using namespace vmath::avx512;
constexpr int kRows4 = 6;  // rows per block at C = 4: 24 accumulators + 4 weights of 32
constexpr int kRows3 = 8;  // at C = 3: 24 + 3
inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
inline V positive(V h) {  // 1 where h > 0, else 0
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(h, zero(), _CMP_GT_OQ), set1(1.0f));
}
#include "microkernel_body.h"  // the kernels, for this instruction set
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
using namespace vmath::avx2;
constexpr int kRows4 = 2;  // 8 accumulators + 4 weights + 1 broadcast of 16
constexpr int kRows3 = 3;  // 9 + 3 + 1
inline V vmax(V a, V b) { return _mm256_max_ps(a, b); }
inline V positive(V h) {
  return _mm256_and_ps(_mm256_cmp_ps(h, zero(), _CMP_GT_OQ), set1(1.0f));
}
#include "microkernel_body.h"  // the kernels, for this instruction set
}  // namespace avx2
#pragma GCC pop_options

// ---------------------------------------------------------------------------------------------
// Entry points: isa is Avx512 or Avx2 (fused_isa() != Portable), and the panels were packed
// for it.

// out (rows, cols, row stride ldo) = a (rows, depth, row stride lda) @ B + bias, B packed as
// transposed_panel (or unit_panel) of `cols` columns; bias (cols) may be null. With
// accumulate, out's own values are added.
inline void product(Isa isa, const Panel& w, const float* a, int64_t lda, int64_t depth,
                    int64_t rows, const float* bias, float* out, int64_t ldo, int64_t cols,
                    bool accumulate = false) {
  if (isa == Isa::Avx512) {
    avx512::product(w, a, lda, depth, rows, bias, out, ldo, cols, accumulate);
  } else {
    avx2::product(w, a, lda, depth, rows, bias, out, ldo, cols, accumulate);
  }
}

// out (rows, cols, row stride ldo) = a^T @ B, a (depth, rows) and B (depth, cols) read in
// place with row strides lda and ldb (no copy of either): cols must be a multiple of 4
// vectors (64 floats with AVX-512, 32 with AVX2). With accumulate, out's values are added.
inline void product_tn(Isa isa, const float* a, int64_t lda, const float* b, int64_t ldb,
                       int64_t depth, int64_t rows, float* out, int64_t ldo, int64_t cols,
                       bool accumulate) {
  if (isa == Isa::Avx512) {
    avx512::product_tn(a, lda, b, ldb, depth, rows, out, ldo, cols, accumulate);
  } else {
    avx2::product_tn(a, lda, b, ldb, depth, rows, out, ldo, cols, accumulate);
  }
}

// out (rows, cols, row stride ldo) += a^T @ b, a (depth, rows) and b (depth, cols) read in
// place with row strides lda and ldb (no copy of either), cols of any width: the weight
// gradients' sums over steps and rows, d^T x and d^T h (weight_grads in shared.cpp).
inline void gradient_product(Isa isa, const float* a, int64_t lda, const float* b, int64_t ldb,
                             int64_t depth, int64_t rows, float* out, int64_t ldo,
                             int64_t cols) {
  if (isa == Isa::Avx512) {
    avx512::gradient_product(a, lda, b, ldb, depth, rows, out, ldo, cols);
  } else {
    avx2::gradient_product(a, lda, b, ldb, depth, rows, out, ldo, cols);
  }
}

// One LSTM step for `rows` rows: gates (rows, 4H, row stride ld) holds x W_ih^T + b on entry
// and the activated (i, f, g, o) on return; h, c (rows, H) the previous state; h_out, c_out
// (rows, H) receive the new one (not overlapping h or c).
inline void lstm_forward_step(Isa isa, const Panel& w, const float* h, const float* c,
                              float* gates, int64_t ld, float* h_out, float* c_out,
                              int64_t rows, int64_t hidden) {
  if (isa == Isa::Avx512) {
    avx512::lstm_forward_step(w, h, c, gates, ld, h_out, c_out, rows, hidden);
  } else {
    avx2::lstm_forward_step(w, h, c, gates, ld, h_out, c_out, rows, hidden);
  }
}

// The stacked LSTM step (lstm_forward_step with the input projection in the product): w and
// bias packed by stacked_gate_panel(isa, w_ih, features, w_hh, 4, H) and stacked_gate_bias(isa,
// b, 4, H) (b = b_ih + b_hh); x (rows, features) the step's inputs; gates (rows, 4H, stride ld)
// receives the activated gates, or is null.
inline void lstm_forward_stacked(Isa isa, const Panel& w, const Panel& bias, const float* x,
                                 int64_t features, const float* h, const float* c,
                                 float* gates, int64_t ld, float* h_out, float* c_out,
                                 int64_t rows, int64_t hidden) {
  (void)isa;  // AVX-512 only (loop.h's fused::stacks)
  avx512::lstm_forward_stacked(w, bias, x, features, h, c, gates, ld, h_out, c_out, rows, hidden);
}

// The first step back of an LSTM: s.d_gates from d h (dh, the incoming d h_n) and d c (dc,
// updated in place to d c of the step before).
inline void lstm_backward_first(Isa isa, const LstmBackStep& s, const float* dh, float* dc,
                                int64_t rows, int64_t hidden) {
  if (isa == Isa::Avx512) {
    avx512::lstm_backward_first(s, dh, dc, rows, hidden);
  } else {
    avx2::lstm_backward_first(s, dh, dc, rows, hidden);
  }
}

// Every later step back: from dA_t (d_gates_now, (rows, 4H)), d h_{t-1} = dA_t W_hh (w packed
// by backward_panel(isa, w_hh, 4, H)) and, when next is given, that step's dA (next->d_gates) with dc
// updated; when next is null, d h0 into dh (rows, H).
inline void lstm_backward_step(Isa isa, const Panel& w, const float* d_gates_now,
                               const LstmBackStep* next, float* dh, float* dc, int64_t rows,
                               int64_t hidden) {
  if (isa == Isa::Avx512) {
    avx512::lstm_backward_step(w, d_gates_now, next, dh, dc, rows, hidden);
  } else {
    avx2::lstm_backward_step(w, d_gates_now, next, dh, dc, rows, hidden);
  }
}

// One GRU step: gates (rows, 3H, stride ld) holds gi on entry and (r, z, n) on return; h the
// previous state (rows, H); hn_out (rows, H, may be null) receives gh_n; h_out the new state.
inline void gru_forward_step(Isa isa, const Panel& w, const float* h, const float* b_hh,
                             float* gates, int64_t ld, float* hn_out, float* h_out,
                             int64_t rows, int64_t hidden) {
  if (isa == Isa::Avx512) {
    avx512::gru_forward_step(w, h, b_hh, gates, ld, hn_out, h_out, rows, hidden);
  } else {
    avx2::gru_forward_step(w, h, b_hh, gates, ld, hn_out, h_out, rows, hidden);
  }
}

// The stacked GRU step (gru_forward_step with the input projection in the product): w packed by
// stacked_gate_panel(isa, w_ih, features, w_hh, 3, H), bias by stacked_gate_bias(isa, b, 4, H) with
// b = (b_ir + b_hr, b_iz + b_hz, b_in, b_hn); gates (null: not kept) receives (r, z, n).
inline void gru_forward_stacked(Isa isa, const Panel& w, const Panel& bias, const float* x,
                                int64_t features, const float* h, float* gates, int64_t ld,
                                float* hn_out, float* h_out, int64_t rows, int64_t hidden) {
  (void)isa;  // AVX-512 only (loop.h's fused::stacks)
  avx512::gru_forward_stacked(w, bias, x, features, h, gates, ld, hn_out, h_out, rows, hidden);
}

// The first step back of a GRU: s's gradients from carry (d h_n on entry; total z on return).
inline void gru_backward_first(Isa isa, const GruBackStep& s, float* carry, int64_t rows,
                               int64_t hidden) {
  if (isa == Isa::Avx512) {
    avx512::gru_backward_first(s, carry, rows, hidden);
  } else {
    avx2::gru_backward_first(s, carry, rows, hidden);
  }
}

// Every later step back: d h_{t-1} = d gh_t W_hh + carry, then next's gradients (carry = its
// total z), or without next d h0 into carry. dgh_now must not be next->dgh.
inline void gru_backward_step(Isa isa, const Panel& w, const float* dgh_now,
                              const GruBackStep* next, float* carry, int64_t rows,
                              int64_t hidden) {
  if (isa == Isa::Avx512) {
    avx512::gru_backward_step(w, dgh_now, next, carry, rows, hidden);
  } else {
    avx2::gru_backward_step(w, dgh_now, next, carry, rows, hidden);
  }
}

// One Elman step: out (rows, H) holds the projection on entry and the state on return; h the
// previous state (not overlapping out).
inline void elman_forward_step(Isa isa, const Panel& w, const float* h, float* out,
                               int64_t rows, int64_t hidden, bool relu) {
  if (isa == Isa::Avx512) {
    avx512::elman_forward_step(w, h, out, rows, hidden, relu);
  } else {
    avx2::elman_forward_step(w, h, out, rows, hidden, relu);
  }
}

// The stacked Elman step: w, bias packed by stacked_unit_panel and stacked_unit_bias (b_ih +
// b_hh), x (rows, features) the step's inputs, out (rows, H) receives the state.
inline void elman_forward_stacked(Isa isa, const Panel& w, const Panel& bias, const float* x,
                                  int64_t features, const float* h, float* out, int64_t rows,
                                  int64_t hidden, bool relu) {
  (void)isa;  // AVX-512 only (loop.h's fused::stacks)
  avx512::elman_forward_stacked(w, bias, x, features, h, out, rows, hidden, relu);
}

inline void elman_backward_first(Isa isa, const ElmanBackStep& s, const float* dh,
                                 int64_t rows, int64_t hidden, bool relu) {
  if (isa == Isa::Avx512) {
    avx512::elman_backward_first(s, dh, rows, hidden, relu);
  } else {
    avx2::elman_backward_first(s, dh, rows, hidden, relu);
  }
}

// d h_{t-1} = d pre_t W_hh, then next's d pre, or without next d h0 into dh.
inline void elman_backward_step(Isa isa, const Panel& w, const float* d_pre_now,
                                const ElmanBackStep* next, float* dh, int64_t rows,
                                int64_t hidden, bool relu) {
  if (isa == Isa::Avx512) {
    avx512::elman_backward_step(w, d_pre_now, next, dh, rows, hidden, relu);
  } else {
    avx2::elman_backward_step(w, d_pre_now, next, dh, rows, hidden, relu);
  }
}

}  // namespace micro
}  // namespace rnnkit
