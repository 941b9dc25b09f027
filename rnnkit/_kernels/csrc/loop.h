// The time loop of every compiled cell, written once and templated on the cell's traits (the
// pattern of ATen's RNN.cpp cell structs and FlashRNN's per-cell headers): the cell files
// (elman.cpp, gru.cpp, lstm.cpp) say what one step of one row does, this file walks the steps,
// the batch rows and the threads.
//
// Two paths run a pass:
//   "fused": the micro-kernel step (microkernel.h), whose product's output tile goes through
//     the cell's epilogue while still in registers. The word means that and nothing else here.
//     It takes float32 calls on a CPU with AVX2 or AVX-512 (fused::takes), masked or not: the
//     step runs on every row and the rows the mask holds then get the held state back
//     (Rows::hold); backward, the kernels' epilogues pass those rows' d h on in the carry.
//     Where the inputs are narrow (fused::stacks) the step is "stacked": its product runs over
//     (x_t, h) @ [W_ih, W_hh]^T, so the input projection happens inside it too.
//   "library": every other call (float64, other CPUs, an LSTM output projection): the step's
//     product on the BLAS (PackedRight), then the cell's epilogue row by row in a separate
//     pass, masked rows held.
// Either way, with zero padding a held row's output is zeroed once the next step has read it
// (Padding).
// (The instruction "fused multiply-add" keeps its name in microkernel.h and vmath.h.)
// Either way the batch is split into one chunk of rows per thread for the whole loop
// (over_batch: no synchronisation per step), and the buffers and their layouts are the cell's
// own, so either backward pass reads what either forward pass wrote.
//
// A cell's traits (struct Cell) supply:
//   kGates, kName          G (the step's product is (rows, G H)), the name for the dispatch
//   kHiddenBiasInProjection  whether b_hh is added to the input projection (else the cell's
//                          epilogue adds it: the GRU's sits inside r * (h W_hn^T + b_hn))
//   kAccumulate            whether h W_hh^T is added onto the step's projections in place
//                          (Forward::Rows::product points there), or written over a scratch
//   kHeldSources           whether the backward pass, with zero padding, reads the held state a
//                          step after masked ones started from (fills Backward::Rows' sources)
//   forward_panel(isa, w_hh, hidden)  W_hh packed for the fused forward step
//   allocate(x, pass, train, projected)  the outputs and saved buffers; `projected` is the
//                          (T, B, G H) input projection (library path: returns null) or
//                          undefined (chunked or stacked fused path, float32: returns the
//                          (T, B, G H) buffer the chunks project into, or the stacked steps
//                          write their gates to, or null for none kept)
//   forward<T>()           a Forward<T>: the pointers of one forward pass (h, h0 and out are
//                          pass.state wide: the units, or an output projection's P)
//   Forward<T>             out, h0, w_hh and the cell's own pointers, with
//     chunk(gates, offset, h, first)  the same pass over one chunk of steps (see run_forward)
//     Rows                 one thread's rows: begin(s, t), product(t), row(t, i, h, out),
//                          hold(t, i, h, out), end(h, out, keep) (after the rows: a per-step
//                          product of the cell's own, e.g. the LSTM's output projection),
//                          finish(), fused(isa, panel, t, h, out) (a stacked step when x is set)
//   stacked steps, optional (fused::Stacks): kStacked = true, stacked_panel(isa, w_ih, features,
//                          w_hh, hidden) and stacked_bias(isa, b_ih, b_hh, hidden) (the panels
//                          the stacked step reads), Forward members x, features and bias
//   Backward<T>            dh, w_hh and the cell's own pointers, with
//     Rows                 one thread's rows: library path begin(t), go(t, i), row(t, i, carry),
//                          hold(t, i), end(t, keep) (after the rows), left(t), beta(); fused
//                          path describe(s, t) (a step of microkernel.h's, with the step's
//                          mask rows), first(isa, t, carry), step(isa, panel, s, t, next, carry)
// The rest of a cell's file is its entry points (checks, the final state, the weight gradients
// from the loop's per-step gradients) and RNNKIT_CELL (cell.h).
// A cell without fused steps (the library path only, e.g. a per-row reduction in its step)
// declares kFused = false and leaves out forward_panel, Rows::fused and the fused backward's
// describe/first/step; its calls take the library path whatever their dtype.
#pragma once

#include "common.h"
#include "microkernel.h"

#include <memory>
#include <type_traits>

namespace rnnkit {

// What every pass shares: the sizes, the direction and the mask.
struct Pass {
  int64_t steps, batch, hidden;
  bool reverse;
  const bool* mask;  // (T, B), or null
  bool zero;         // zero padding: outputs at masked steps are zero (only with a mask)
  int64_t state;     // the width of h (and out): hidden, or P with an output projection
  bool fusable;      // whether the fused steps may take the call (not with a projection)

  // the mask's flags of step t from row b0 on, or null without a mask
  const bool* keep(int64_t t, int64_t b0) const {
    return mask == nullptr ? nullptr : mask + t * batch + b0;
  }
};

// Zero padding in a forward pass over one thread's rows: a step's held rows keep the state
// in their output rows until the next step has read it (as its h), then are zeroed.
template <typename T>
class Padding {
 public:
  Padding(const Pass& p, int64_t rows) : zero_(p.zero), rows_(rows), width_(p.state) {}
  // after a step wrote its outputs o (its rows' mask: keep)
  void after(T* o, const bool* keep) {
    if (!zero_) return;
    if (held_ != nullptr) zero_rows(previous_, held_, rows_, width_);
    previous_ = o;
    held_ = keep;
  }
  // after the last step
  void finish() const {
    if (zero_ && held_ != nullptr) zero_rows(previous_, held_, rows_, width_);
  }

 private:
  bool zero_;
  int64_t rows_, width_;
  T* previous_ = nullptr;       // the previous step's output rows
  const bool* held_ = nullptr;  // and that step's mask
};

// The held states a zero-padded backward pass reads (Cell::kHeldSources), else none.
template <class Cell>
std::vector<int64_t> held_sources_of(const Pass& p) {
  if (!Cell::kHeldSources || !p.zero) return {};
  return held_sources(p.mask, p.steps, p.batch, p.reverse);
}

// A tensor's data, or null when it is undefined (an absent buffer).
template <typename T>
inline T* data_or_null(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// Whether Cell has fused steps: kFused where it says, else true.
template <class Cell, typename = void>
struct has_fused : std::true_type {};
template <class Cell>
struct has_fused<Cell, std::void_t<decltype(Cell::kFused)>> : std::bool_constant<Cell::kFused> {};

namespace fused {

using micro::Isa;

// Whether the fused steps take a call: float32 on a CPU with AVX2 or AVX-512.
template <typename T>
inline bool takes() {
  return std::is_same_v<T, float> && micro::fused_isa() != Isa::Portable;
}
// ... and a pass the cell's fused steps cover (their panels are square: h as wide as the units)
template <typename T>
inline bool takes(const Pass& p) {
  return p.fusable && takes<T>();
}

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

// The forward pass on the fused steps; `panel` is W_hh packed by Cell::forward_panel. Each
// step runs on every row; the rows the mask holds then get their state back. With `more`
// (a chunk that another continues) the last step's held rows are left to that chunk's caller
// to zero, once the next chunk has read them.
template <class Cell>
void forward(const micro::Panel& panel, const typename Cell::template Forward<float>& f,
             const Pass& p, bool more = false) {
  const Isa isa = micro::fused_isa();
  const int64_t width = Cell::kGates * p.hidden;
  over_batch(p.batch, 2.0 * p.steps * p.batch * width * p.hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    typename Cell::template Forward<float>::Rows cell(f, p, b0, rows, true);
    Padding<float> padding(p, rows);
    const float* h = f.h0 + b0 * p.hidden;
    for (int64_t s = 0; s < p.steps; ++s) {
      const int64_t t = p.reverse ? p.steps - 1 - s : s;
      float* o = at_step(f.out, t, p.batch, b0, p.hidden);
      const bool* keep = p.keep(t, b0);
      cell.begin(s, t);
      cell.fused(isa, panel, t, h, o);
      for (int64_t i = 0; keep != nullptr && i < rows; ++i) {
        if (!keep[i]) cell.hold(t, i, h + i * p.hidden, o + i * p.hidden);
      }
      cell.end(h, o, keep);
      padding.after(o, keep);
      h = o;
    }
    if (!more) padding.finish();
    cell.finish();
  });
}

// Whether a cell has stacked steps: traits with kStacked = true, stacked_panel(isa, w_ih,
// features, w_hh, hidden) and stacked_bias(isa, b_ih, b_hh, hidden) (the panels its stacked step
// reads), and Forward members x, features, bias (see stacked below).
template <class Cell, class = void>
struct Stacks : std::false_type {};
template <class Cell>
struct Stacks<Cell, std::void_t<decltype(Cell::kStacked)>> : std::bool_constant<Cell::kStacked> {};

// Whether a dense float32 pass runs stacked: the step's product over (x_t, h) @ [W_ih, W_hh]^T,
// the input projection inside it (microkernel.h's stacked_gate_panel), no projection buffer and
// no separate projection pass. Taken with AVX-512 where the stacked panel stays in L2 next to
// the step's rows (at most 512 KiB) and the inputs are no wider than the state (a wide input is
// projected more cheaply once per chunk of steps, in_chunks). Measured on the 2-core AVX-512
// machine (busy: the operator timed in alternating processes, one thread, median ratio of 4
// rounds) against in_chunks: inference at B=32 T=100 D=32 H=64 LSTM 1.23x, GRU 1.19x, RNN
// 1.11x (training 1.16x, 1.07x, 1.12x); neuralforecast's LSTM, B=128 T=96 H=128, D=1 1.38x
// and D=128 1.17x (training 1.50x, 1.16x); B=16 T=1000 D=64 H=128 LSTM 1.05x, GRU 1.33x.
// AVX2 keeps in_chunks, whose projection runs on the library's product there (Projection):
// the stacked steps' 2-row blocks are not measured against it on an AVX2 machine.
inline bool stacks(Isa isa, int64_t features, int64_t hidden, int gates) {
  constexpr int64_t kStackedBytes = int64_t(512) << 10;
  return isa == Isa::Avx512 && features <= hidden &&
         (features + hidden) * gates * hidden * int64_t(sizeof(float)) <= kStackedBytes;
}

// The stacked pass: `cell.allocate` keeps its gates buffer only in training (the steps write the
// activated gates there), and Forward's x, features and bias are set for Rows::fused.
template <class Cell>
void stacked(Cell& cell, const Tensor& x, const Tensor& w_ih, const Tensor& b_ih,
             const Tensor& b_hh, const Pass& p, bool train) {
  const Isa isa = micro::fused_isa();
  const int64_t features = x.size(2);
  cell.allocate(x, p, train, Tensor());
  typename Cell::template Forward<float> f = cell.template forward<float>();
  const micro::Panel panel =
      Cell::stacked_panel(isa, w_ih.data_ptr<float>(), features, f.w_hh, p.hidden);
  const micro::Panel bias = Cell::stacked_bias(isa, b_ih, b_hh, p.hidden);
  f.x = x.data_ptr<float>();
  f.features = features;
  f.bias = &bias;
  forward<Cell>(panel, f, p);
}

// The backward pass on the fused steps: each step's product d h_{t-1} = d pre_t W_hh is
// followed in registers by the next step back's gate gradients (the first step's are formed
// on their own).
template <class Cell>
void backward(const typename Cell::template Backward<float>& b, const Pass& p) {
  if (p.steps == 0) return;
  const Isa isa = micro::fused_isa();
  const int64_t width = Cell::kGates * p.hidden;
  const micro::Panel panel = micro::backward_panel(isa, b.w_hh, Cell::kGates, p.hidden);
  const std::vector<int64_t> sources = held_sources_of<Cell>(p);
  over_batch(p.batch, 2.0 * p.steps * p.batch * width * p.hidden, [&](int64_t b0, int64_t b1) {
    typename Cell::template Backward<float>::Rows cell(b, p, sources, b0, b1 - b0, true);
    auto order = [&](int64_t s) { return p.reverse ? s : p.steps - 1 - s; };  // processing order
    float* carry = b.dh + b0 * p.hidden;
    cell.first(isa, order(0), carry);
    for (int64_t s = 0; s < p.steps; ++s) {
      const bool last = s + 1 == p.steps;
      const int64_t after = last ? s : s + 1;
      const auto next = cell.describe(after, order(after));
      cell.step(isa, panel, s, order(s), last ? nullptr : &next, carry);
    }
  });
}

}  // namespace fused

// ---------------------------------------------------------------------------------------------
// The forward pass over `f`: the fused steps when they take the call, else the library path.
template <class Cell, typename T>
void forward_loop(const typename Cell::template Forward<T>& f, const Pass& p) {
  if constexpr (std::is_same_v<T, float> && has_fused<Cell>::value) {
    if (fused::takes<T>(p)) {
      return fused::forward<Cell>(Cell::forward_panel(micro::fused_isa(), f.w_hh, p.hidden), f, p);
    }
  }
  const int64_t hidden = p.hidden, width = Cell::kGates * hidden, state = p.state;
  over_batch(p.batch, 2.0 * p.steps * p.batch * width * hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    typename Cell::template Forward<T>::Rows cell(f, p, b0, rows, false);
    Padding<T> padding(p, rows);
    const T* h = f.h0 + b0 * state;
    const PackedRight<T> recurrent(Op::T, rows, width, state, f.w_hh, state);  // @ W_hh^T
    for (int64_t s = 0; s < p.steps; ++s) {
      const int64_t t = p.reverse ? p.steps - 1 - s : s;
      cell.begin(s, t);
      recurrent.multiply(h, state, Cell::kAccumulate ? T(1) : T(0), cell.product(t), width);
      T* o = at_step(f.out, t, p.batch, b0, state);  // (rows, state)
      const bool* keep = p.keep(t, b0);
      for (int64_t i = 0; i < rows; ++i) {
        if (keep != nullptr && !keep[i]) {
          cell.hold(t, i, h + i * state, o + i * state);
        } else {
          cell.row(t, i, h + i * state, o + i * state);
        }
      }
      cell.end(h, o, keep);
      padding.after(o, keep);
      h = o;
    }
    padding.finish();
    cell.finish();
  });
}

// The backward pass: b.dh enters as d h_n and leaves as d h0 (and a cell's other carried
// gradients likewise); the cell's Rows write every step's gate gradients. With zero padding the
// outputs at masked steps were constants: their gradients are not passed on.
template <class Cell, typename T>
void backward_loop(const typename Cell::template Backward<T>& b, const Pass& p) {
  if constexpr (std::is_same_v<T, float> && has_fused<Cell>::value) {
    if (fused::takes<T>(p)) return fused::backward<Cell>(b, p);
  }
  const int64_t hidden = p.hidden, width = Cell::kGates * hidden, state = p.state;
  const std::vector<int64_t> sources = held_sources_of<Cell>(p);
  over_batch(p.batch, 2.0 * p.steps * p.batch * width * hidden, [&](int64_t b0, int64_t b1) {
    const int64_t rows = b1 - b0;
    typename Cell::template Backward<T>::Rows cell(b, p, sources, b0, rows, false);
    T* carry = b.dh + b0 * state;  // (rows, state): d loss / d h_t, carried back through time
    const PackedRight<T> recurrent(Op::N, rows, state, width, b.w_hh, state);  // @ W_hh
    for (int64_t s = 0; s < p.steps; ++s) {
      const int64_t t = p.reverse ? s : p.steps - 1 - s;
      cell.begin(t);
      const bool* keep = p.keep(t, b0);
      for (int64_t i = 0; i < rows; ++i) {
        T* c = carry + i * state;
        if (keep != nullptr && !keep[i]) {  // held: d h passes through, no gate gradient
          if (!p.zero) {
            const T* go = cell.go(t, i);
            for (int64_t j = 0; j < state; ++j) c[j] += go[j];
          }
          cell.hold(t, i);
          continue;
        }
        cell.row(t, i, c);
      }
      cell.end(t, keep);
      // d h_{t-1} = (this step's left factor) W_hh, onto what the rows left in the carry
      recurrent.multiply(cell.left(t), width, cell.beta(), carry, state);
    }
  });
}

// The forward pass of `cell` from the operator's inputs: `cell.allocate` makes its outputs and
// saved buffers, then the float32 pass on stacked steps (each step's input projection inside
// its product, fused::stacks), or in chunks of steps (each chunk's input projections formed
// right before its fused steps, see in_chunks), or the whole sequence's projections first and
// forward_loop over them.
template <class Cell>
void run_forward(Cell& cell, const Tensor& x, const Tensor& w_ih, const Tensor& b_ih,
                 const Tensor& b_hh, const Pass& p, bool train) {
  if constexpr (fused::Stacks<Cell>::value) {
    if (x.scalar_type() == at::kFloat && fused::takes<float>(p) &&
        fused::stacks(micro::fused_isa(), x.size(2), p.hidden, Cell::kGates)) {
      return fused::stacked<Cell>(cell, x, w_ih, b_ih, b_hh, p, train);
    }
  }
  const Tensor bias2 = Cell::kHiddenBiasInProjection ? b_hh : Tensor();
  const int64_t chunk = chunk_steps(p.steps, p.batch, Cell::kGates * p.hidden);
  if (chunk < p.steps && x.scalar_type() == at::kFloat && fused::takes<float>(p)) {
    float* into = cell.allocate(x, p, train, Tensor());
    const typename Cell::template Forward<float> whole = cell.template forward<float>();
    const micro::Panel panel = Cell::forward_panel(micro::fused_isa(), whole.w_hh, p.hidden);
    const int64_t stride = p.batch * p.hidden;  // one step of out
    fused::in_chunks(
        x, w_ih, b_ih, bias2, chunk, p.reverse,
        [&](float* gates, int64_t t0, int64_t n, bool first) {
          Pass part = p;
          part.steps = n;
          part.mask = p.keep(t0, 0);
          // a chunk starts from the state the previous one ended at
          const int64_t before = p.reverse ? t0 + n : t0 - 1;
          const bool more = p.reverse ? t0 > 0 : t0 + n < p.steps;
          const float* h = first ? whole.h0 : whole.out + before * stride;
          fused::forward<Cell>(panel, whole.chunk(gates, t0 * stride, h, first), part, more);
          // zero padding: the held rows of the step before the chunk have been read now
          if (p.zero && !first) {
            zero_rows(whole.out + before * stride, p.keep(before, 0), p.batch, p.hidden);
          }
        },
        into);
    return;
  }
  cell.allocate(x, p, train, project_inputs(x, w_ih, b_ih, bias2));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), Cell::kName, [&] {
    forward_loop<Cell, scalar_t>(cell.template forward<scalar_t>(), p);
  });
}

// The Pass of an operator call: x (T, B, D), the mask (T, B) contiguous or undefined; `state`
// the width of h when an output projection makes it other than `hidden` (no fused steps then).
inline Pass make_pass(const Tensor& x, int64_t hidden, const Tensor& mask, bool reverse,
                      bool zero, int64_t state = -1) {
  return Pass{x.size(0), x.size(1), hidden, reverse, data_or_null<bool>(mask),
              zero && mask.defined(), state < 0 ? hidden : state, state < 0};
}

}  // namespace rnnkit
