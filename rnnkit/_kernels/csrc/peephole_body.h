// The peephole LSTM's fused steps (peephole.cpp), included there once per instruction set inside
// micro::avx512 / micro::avx2 (compiled for it by #pragma GCC target), where microkernel.h's
// over_rows and that instruction set's vmath functions are in scope: the LSTM's micro-kernel
// steps with the peephole terms, elementwise in c, added in their epilogues. Not a header of
// its own: no include guard, no includes.

  // ---- forward: acc = h W_hh^T of the 4 gates (i, f, g, o) of one unit tile of R rows ----
  struct PeepholeForward {
    const float *c, *peep;  // peep: p_i, p_f, p_o (3H)
    float *gates, *h_out, *c_out;
    int64_t ld, hidden, j0;
    int n;
    template <int R>
    void apply(V (&acc)[R][4]) const {
      const V pi = load_n(peep + j0, n), pf = load_n(peep + hidden + j0, n);
      const V po = load_n(peep + 2 * hidden + j0, n);
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        float* g = gates + r * ld + j0;
        const V cp = load_n(c + r * hidden + j0, n);
        const V i = sigmoid(fma(pi, cp, add(acc[r][0], load_n(g, n))));
        const V f = sigmoid(fma(pf, cp, add(acc[r][1], load_n(g + hidden, n))));
        const V gg = tanh(add(acc[r][2], load_n(g + 2 * hidden, n)));
        const V cn = fma(f, cp, mul(i, gg));
        const V o = sigmoid(fma(po, cn, add(acc[r][3], load_n(g + 3 * hidden, n))));
        store_n(g, i, n);
        store_n(g + hidden, f, n);
        store_n(g + 2 * hidden, gg, n);
        store_n(g + 3 * hidden, o, n);
        store_n(c_out + r * hidden + j0, cn, n);
        store_n(h_out + r * hidden + j0, mul(o, tanh(cn)), n);
      }
    }
  };

  inline void peephole_forward_step(const Panel& w, const float* peep, const float* h,
                                    const float* c, float* gates, int64_t ld, float* h_out,
                                    float* c_out, int64_t rows, int64_t hidden) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * kLanes;
      const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
      over_rows<kRows4, 4>(rows, h, hidden, w.group(g), hidden, [&](int64_t r0) {
        return PeepholeForward{c + r0 * hidden, peep, gates + r0 * ld, h_out + r0 * hidden,
                               c_out + r0 * hidden, ld, hidden, j0, n};
      });
    }
  }

  // dA of one row and unit tile from d h (total, output gradient included) and d c, which
  // leaves as d c of the step before (through f and the input and forget peepholes)
  inline void peephole_gate_grad(const PeepholeBackStep& s, int64_t r, int64_t hidden,
                                 int64_t j0, int n, V total, float* dc) {
    const float* g = s.gates + r * 4 * hidden + j0;
    const V i = load_n(g, n), f = load_n(g + hidden, n), gg = load_n(g + 2 * hidden, n);
    const V o = load_n(g + 3 * hidden, n);
    const V one = set1(1.0f);
    const V tc = tanh(load_n(s.c + r * hidden + j0, n));
    const V cp = load_n(s.c_prev + r * hidden + j0, n);
    const V d_o = mul(mul(total, tc), mul(o, sub(one, o)));
    const V dct = fma(load_n(s.peep + 2 * hidden + j0, n), d_o,
                      fma(mul(total, o), fnma(tc, tc, one), load_n(dc, n)));
    const V d_i = mul(mul(dct, gg), mul(i, sub(one, i)));
    const V d_f = mul(mul(dct, cp), mul(f, sub(one, f)));
    float* d = s.d_gates + r * 4 * hidden + j0;
    store_n(d, d_i, n);
    store_n(d + hidden, d_f, n);
    store_n(d + 2 * hidden, mul(mul(dct, i), fnma(gg, gg, one)), n);
    store_n(d + 3 * hidden, d_o, n);
    store_n(dc, fma(load_n(s.peep + hidden + j0, n), d_f,
                    fma(load_n(s.peep + j0, n), d_i, mul(dct, f))), n);
  }

  inline V peephole_total(const PeepholeBackStep& s, int64_t r, int64_t j0, int n, V dh) {
    return add(dh, load_strided(s.go + r * s.go_rows + j0 * s.go_stride, s.go_stride, n));
  }

  // the first step back: dA from the carried d h (dh) and d c (dc), elementwise
  inline void peephole_backward_first(const PeepholeBackStep& s, const float* dh, float* dc,
                                      int64_t rows, int64_t hidden) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j0 = 0; j0 < hidden; j0 += kLanes) {
        const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
        const V total = peephole_total(s, r, j0, n, load_n(dh + r * hidden + j0, n));
        peephole_gate_grad(s, r, hidden, j0, n, total, dc + r * hidden + j0);
      }
    }
  }

  // ---- backward: acc = d h_{t-1} of 4 unit tiles of R rows ----
  struct PeepholeBackward {
    const PeepholeBackStep* next; /* null: store d h0 */
    float *dh, *dc;               /* this block's rows */
    int64_t r0, hidden, j0;
    template <int R>
    void apply(V (&acc)[R][4]) const {
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        #pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          const int64_t j = j0 + c * kLanes;
          if (j >= hidden) break;
          const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j));
          if (next == nullptr) {
            store_n(dh + r * hidden + j, acc[r][c], n);
          } else {
            const V total = peephole_total(*next, r0 + r, j, n, acc[r][c]);
            peephole_gate_grad(*next, r0 + r, hidden, j, n, total, dc + r * hidden + j);
          }
        }
      }
    }
  };

  inline void peephole_backward_step(const Panel& w, const float* d_gates_now,
                                     const PeepholeBackStep* next, float* dh, float* dc,
                                     int64_t rows, int64_t hidden) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * 4 * kLanes;
      over_rows<kRows4, 4>(rows, d_gates_now, 4 * hidden, w.group(g), 4 * hidden,
                           [&](int64_t r0) {
                             return PeepholeBackward{next, dh + r0 * hidden, dc + r0 * hidden,
                                                     r0, hidden, j0};
                           });
    }
  }
