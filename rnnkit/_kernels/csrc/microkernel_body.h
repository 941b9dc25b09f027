// The kernels of microkernel.h, included there once per instruction set, inside that
// instruction set's namespace (compiled for it by #pragma GCC target) with its vmath functions
// (V, kLanes, load, fma, sigmoid, ...) and its block sizes kRows4 / kRows3 in scope. Not a
// header of its own: no include guard, no includes.

  // acc[r][c] = sum_k a[r][k] b[k][c]: R rows of a (stride lda; with TransposedA, a[r][k] is
  // a[k * lda + r]) times one panel group, whose k-th C vectors start ldb floats after the
  // (k-1)-th (packed: right after them)
  template <int R, int C, typename Epilogue, bool TransposedA = false>
  inline void panel(const float* a, int64_t lda, const float* b, int64_t depth,
                    const Epilogue& epilogue, int64_t ldb = C * kLanes) {
    V acc[R][C];
    #pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      #pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = zero();
    }
    for (int64_t k = 0; k < depth; ++k, b += ldb) {
      V w[C];
      #pragma GCC unroll 4
      for (int c = 0; c < C; ++c) w[c] = load(b + c * kLanes);
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const V x = set1(TransposedA ? a[k * lda + r] : a[r * lda + k]);
        #pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[r][c] = fma(x, w[c], acc[r][c]);
      }
    }
    epilogue.template apply<R>(acc);
  }

  // the block of n rows (1 <= n <= R) as panel<n>
  template <int R, int C, typename Epilogue, bool TransposedA = false>
  inline void rows_block(int64_t n, const float* a, int64_t lda, const float* b, int64_t depth,
                         const Epilogue& epilogue, int64_t ldb = C * kLanes) {
    if constexpr (R > 1) {
      if (n < R) {
        return rows_block<R - 1, C, Epilogue, TransposedA>(n, a, lda, b, depth, epilogue, ldb);
      }
    }
    panel<R, C, Epilogue, TransposedA>(a, lda, b, depth, epilogue, ldb);
  }

  // every row block of `rows` rows against panel group g; make(r0) is the block's epilogue
  template <int R, int C, typename Make, bool TransposedA = false>
  inline void over_rows(int64_t rows, const float* a, int64_t lda, const float* b,
                        int64_t depth, const Make& make, int64_t ldb = C * kLanes) {
    const int64_t blocks = (rows + R - 1) / R;
    int64_t r0 = 0;
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t r1 = rows * (i + 1) / blocks;
      rows_block<R, C, decltype(make(r0)), TransposedA>(
          r1 - r0, TransposedA ? a + r0 : a + r0 * lda, lda, b, depth, make(r0), ldb);
      r0 = r1;
    }
  }

  // ---- stacked steps: the input projection inside the step's product. A stacked panel
  // group holds, k by k, first the D rows of W_ih^T, then the H rows of W_hh^T (microkernel.h's
  // stacked_gate_panel), so bias + x_t W_ih^T + h W_hh^T is one product over depth D + H whose
  // left factor is each row's x_t, then its h: no projection buffer is written or read. ----

  // acc[r][c] += sum_k a[r][k] b[k][c] for the C columns of one segment of a stacked group, the
  // last of them (c = C - 1) into acc[r][Last] (the GRU's n gate: x and h parts apart)
  template <int R, int C, int A, int Last>
  inline void accumulate(V (&acc)[R][A], const float* a, int64_t lda, const float* b,
                         int64_t depth) {
    for (int64_t k = 0; k < depth; ++k, b += C * kLanes) {
      V w[C];
      #pragma GCC unroll 4
      for (int c = 0; c < C; ++c) w[c] = load(b + c * kLanes);
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const V x = set1(a[r * lda + k]);
        #pragma GCC unroll 4
        for (int c = 0; c < C; ++c) {
          V& out = acc[r][c == C - 1 ? Last : c];
          out = fma(x, w[c], out);
        }
      }
    }
  }

  // acc (R rows, A vectors) = bias (A vectors) + x (R rows, dx) @ the group's first dx depths
  // + h (R rows, dh) @ the rest, each depth C vectors; then the epilogue
  template <int R, int C, int A, int LastX, int LastH, typename Epilogue>
  inline void stacked(const float* x, int64_t ldx, int64_t dx, const float* h, int64_t ldh,
                      int64_t dh, const float* b, const float* bias, const Epilogue& epilogue) {
    V acc[R][A];
    #pragma GCC unroll 4
    for (int c = 0; c < A; ++c) {
      const V v = load(bias + c * kLanes);
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[r][c] = v;
    }
    accumulate<R, C, A, LastX>(acc, x, ldx, b, dx);
    accumulate<R, C, A, LastH>(acc, h, ldh, b + dx * C * kLanes, dh);
    epilogue.template apply<R>(acc);
  }

  // the block of n rows (1 <= n <= R) as stacked<n>
  template <int R, int C, int A, int LastX, int LastH, typename Epilogue>
  inline void stacked_block(int64_t n, const float* x, int64_t ldx, int64_t dx, const float* h,
                            int64_t ldh, int64_t dh, const float* b, const float* bias,
                            const Epilogue& epilogue) {
    if constexpr (R > 1) {
      if (n < R) {
        return stacked_block<R - 1, C, A, LastX, LastH>(n, x, ldx, dx, h, ldh, dh, b, bias,
                                                         epilogue);
      }
    }
    stacked<R, C, A, LastX, LastH>(x, ldx, dx, h, ldh, dh, b, bias, epilogue);
  }

  // every row block of `rows` rows against stacked group b (bias: its A bias vectors), in
  // equal blocks as over_rows; make(r0) is the block's epilogue
  template <int R, int C, int A, int LastX, int LastH, typename Make>
  inline void stacked_rows(int64_t rows, const float* x, int64_t ldx, int64_t dx,
                           const float* h, int64_t ldh, int64_t dh, const float* b,
                           const float* bias, const Make& make) {
    const int64_t blocks = (rows + R - 1) / R;
    int64_t r0 = 0;
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t r1 = rows * (i + 1) / blocks;
      stacked_block<R, C, A, LastX, LastH>(r1 - r0, x + r0 * ldx, ldx, dx, h + r0 * ldh, ldh,
                                           dh, b, bias, make(r0));
      r0 = r1;
    }
  }

  inline V load_strided(const float* p, int64_t stride, int n) {
    if (stride == 1) return load_n(p, n);
    if (stride == 0) return set1(*p);  // a broadcast gradient (out.sum()'s): one value
    float tmp[kLanes] = {};
    for (int l = 0; l < n; ++l) tmp[l] = p[l * stride];
    return load(tmp);
  }

  // ---- a plain product: out (rows, cols) = a @ B + bias (a (cols) row, or null), plus out's
  // own values with accumulate ----
  struct Product {
    const float* bias;
    float* out;
    int64_t ldo, cols, j0;
    bool accumulate;
    template <int R>
    void apply(V (&acc)[R][4]) const {
      #pragma GCC unroll 4
      for (int c = 0; c < 4; ++c) {
        const int64_t j = j0 + c * kLanes;
        if (j >= cols) break;
        const int n = static_cast<int>(std::min<int64_t>(kLanes, cols - j));
        const V b = bias == nullptr ? zero() : load_n(bias + j, n);
        #pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
          float* o = out + r * ldo + j;
          const V v = add(acc[r][c], b);
          store_n(o, accumulate ? add(v, load_n(o, n)) : v, n);
        }
      }
    }
  };

  // Tiles of rows, every group for each: a tile of a is read from memory once and stays in
  // cache for all of B's groups (B, a weight, stays in L2).
  inline void product(const Panel& w, const float* a, int64_t lda, int64_t depth, int64_t rows,
                      const float* bias, float* out, int64_t ldo, int64_t cols,
                      bool accumulate) {
    constexpr int64_t kTile = 16 * kRows4;
    for (int64_t t0 = 0; t0 < rows; t0 += kTile) {
      const int64_t n = std::min(kTile, rows - t0);
      const float* at = a + t0 * lda;
      float* ot = out + t0 * ldo;
      for (int64_t g = 0; g < w.groups(); ++g) {
        const int64_t j0 = g * 4 * kLanes;
        over_rows<kRows4, 4>(n, at, lda, w.group(g), depth, [&](int64_t r0) {
          return Product{bias, ot + r0 * ldo, ldo, cols, j0, accumulate};
        });
      }
    }
  }

  // out (rows, cols) = a^T @ B with a (depth, rows) and B (depth, cols) both read in place,
  // row strides lda and ldb: cols a multiple of 4 vectors
  inline void product_tn(const float* a, int64_t lda, const float* b, int64_t ldb,
                         int64_t depth, int64_t rows, float* out, int64_t ldo, int64_t cols,
                         bool accumulate) {
    for (int64_t j0 = 0; j0 < cols; j0 += 4 * kLanes) {
      auto make = [&](int64_t r0) {
        return Product{nullptr, out + r0 * ldo, ldo, cols, j0, accumulate};
      };
      over_rows<kRows4, 4, decltype(make), true>(rows, a, lda, b + j0, depth, make, ldb);
    }
  }

  // ---- LSTM forward: acc = the 4 gates of units j0..j0+n of R rows ----
  // (stacked: acc holds the whole pre-activation, and gates, null or not, is only written)
  struct LstmForward {
    const float *c;
    float *gates, *h_out, *c_out;  // gates: null when not kept (stacked only)
    int64_t ld, hidden, j0;
    int n;
    bool stacked;
    template <int R>
    void apply(V (&acc)[R][4]) const {
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        float* g = gates == nullptr ? nullptr : gates + r * ld + j0;
        V a[4] = {acc[r][0], acc[r][1], acc[r][2], acc[r][3]};
        if (!stacked) {
          #pragma GCC unroll 4
          for (int q = 0; q < 4; ++q) a[q] = add(a[q], load_n(g + q * hidden, n));
        }
        const V i = sigmoid(a[0]);
        const V f = sigmoid(a[1]);
        const V gg = tanh(a[2]);
        const V o = sigmoid(a[3]);
        const V cn = fma(f, load_n(c + r * hidden + j0, n), mul(i, gg));
        if (gates != nullptr) {
          store_n(g, i, n);
          store_n(g + hidden, f, n);
          store_n(g + 2 * hidden, gg, n);
          store_n(g + 3 * hidden, o, n);
        }
        store_n(c_out + r * hidden + j0, cn, n);
        store_n(h_out + r * hidden + j0, mul(o, tanh(cn)), n);
      }
    }
  };

  inline void lstm_forward_step(const Panel& w, const float* h, const float* c, float* gates,
                                int64_t ld, float* h_out, float* c_out, int64_t rows,
                                int64_t hidden) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * kLanes;
      const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
      over_rows<kRows4, 4>(rows, h, hidden, w.group(g), hidden, [&](int64_t r0) {
        return LstmForward{c + r0 * hidden, gates + r0 * ld, h_out + r0 * hidden,
                           c_out + r0 * hidden, ld, hidden, j0, n, false};
      });
    }
  }

  // the stacked step: x (rows, features) this step's inputs, bias the stacked panel's biases
  // (A = 4 vectors a group), gates (rows, 4H, row stride ld) receives the activated gates or
  // is null
  inline void lstm_forward_stacked(const Panel& w, const Panel& bias, const float* x,
                                   int64_t features, const float* h, const float* c,
                                   float* gates, int64_t ld, float* h_out, float* c_out,
                                   int64_t rows, int64_t hidden) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * kLanes;
      const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
      stacked_rows<kRows4, 4, 4, 3, 3>(
          rows, x, features, features, h, hidden, hidden, w.group(g), bias.group(g),
          [&](int64_t r0) {
            return LstmForward{c + r0 * hidden, gates == nullptr ? nullptr : gates + r0 * ld,
                               h_out + r0 * hidden, c_out + r0 * hidden, ld, hidden, j0, n,
                               true};
          });
    }
  }

  // dA of one row and unit tile from d h (total, output gradient included) and d c
  inline void lstm_gate_grad(const LstmBackStep& s, int64_t r, int64_t hidden, int64_t j0,
                             int n, V total, float* dc) {
    const float* g = s.gates + r * 4 * hidden + j0;
    const V i = load_n(g, n), f = load_n(g + hidden, n), gg = load_n(g + 2 * hidden, n);
    const V o = load_n(g + 3 * hidden, n);
    const V one = set1(1.0f);
    const V tc = tanh(load_n(s.c + r * hidden + j0, n));
    const V dct = fma(mul(total, o), fnma(tc, tc, one), load_n(dc, n));
    float* d = s.d_gates + r * 4 * hidden + j0;
    store_n(d, mul(mul(dct, gg), mul(i, sub(one, i))), n);
    store_n(d + hidden, mul(mul(dct, load_n(s.c_prev + r * hidden + j0, n)),
                            mul(f, sub(one, f))), n);
    store_n(d + 2 * hidden, mul(mul(dct, i), fnma(gg, gg, one)), n);
    store_n(d + 3 * hidden, mul(mul(total, tc), mul(o, sub(one, o))), n);
    store_n(dc, mul(dct, f), n);
  }

  inline V lstm_total(const LstmBackStep& s, int64_t r, int64_t j0, int n, V dh) {
    return add(dh, load_strided(s.go + r * s.go_rows + j0 * s.go_stride, s.go_stride, n));
  }

  // the first step back: dA from the carried d h (dh) and d c (dc), elementwise
  inline void lstm_backward_first(const LstmBackStep& s, const float* dh, float* dc,
                                  int64_t rows, int64_t hidden) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j0 = 0; j0 < hidden; j0 += kLanes) {
        const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
        const V total = lstm_total(s, r, j0, n, load_n(dh + r * hidden + j0, n));
        lstm_gate_grad(s, r, hidden, j0, n, total, dc + r * hidden + j0);
      }
    }
  }

  // ---- LSTM backward: acc = d h_{t-1} of 4 unit tiles of R rows ----
  struct LstmBackward {
    const LstmBackStep* next; /* null: store d h0 */
    float *dh, *dc;           /* this block's rows */
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
            const V total = lstm_total(*next, r0 + r, j, n, acc[r][c]);
            lstm_gate_grad(*next, r0 + r, hidden, j, n, total, dc + r * hidden + j);
          }
        }
      }
    }
  };

  // d_gates_now (rows, 4H): dA of step t; then d h_{t-1} = dA_t W_hh and, with next, dA of
  // the next step back (its d_gates), d c carried in dc (rows, H); without, d h0 into dh.
  inline void lstm_backward_step(const Panel& w, const float* d_gates_now,
                                 const LstmBackStep* next, float* dh, float* dc,
                                 int64_t rows, int64_t hidden) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * 4 * kLanes;
      over_rows<kRows4, 4>(rows, d_gates_now, 4 * hidden, w.group(g), 4 * hidden,
                           [&](int64_t r0) {
                             return LstmBackward{next, dh + r0 * hidden, dc + r0 * hidden, r0,
                                                 hidden, j0};
                           });
    }
  } \
  // ---- GRU forward: acc = h W_hh^T of the 3 gates (r, z, n) of one unit tile ----
  struct GruForward {
    const float *h, *b_hh;
    float *gates, *hn_out, *h_out;
    int64_t ld, hidden, j0;
    int n;
    template <int R>
    void apply(V (&acc)[R][3]) const {
      const V br = load_n(b_hh + j0, n), bz = load_n(b_hh + hidden + j0, n);
      const V bn = load_n(b_hh + 2 * hidden + j0, n);
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        float* g = gates + r * ld + j0;
        const V rr = sigmoid(add(load_n(g, n), add(acc[r][0], br)));
        const V z = sigmoid(add(load_n(g + hidden, n), add(acc[r][1], bz)));
        const V hn = add(acc[r][2], bn);
        const V nn = tanh(fma(rr, hn, load_n(g + 2 * hidden, n)));
        store_n(g, rr, n);
        store_n(g + hidden, z, n);
        store_n(g + 2 * hidden, nn, n);
        if (hn_out != nullptr) store_n(hn_out + r * hidden + j0, hn, n);
        const V hp = load_n(h + r * hidden + j0, n);
        store_n(h_out + r * hidden + j0, fma(z, sub(hp, nn), nn), n);
      }
    }
  };

  // ---- GRU stacked: acc = (r, z, n_x, n_h) of one unit tile, biases included: r and z of
  // x and h together, n's x part (+ b_in) and h part (+ b_hn) apart. gates null: not kept ----
  struct GruStacked {
    const float* h;
    float *gates, *hn_out, *h_out;
    int64_t ld, hidden, j0;
    int n;
    template <int R>
    void apply(V (&acc)[R][4]) const {
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const V rr = sigmoid(acc[r][0]);
        const V z = sigmoid(acc[r][1]);
        const V nn = tanh(fma(rr, acc[r][3], acc[r][2]));
        if (gates != nullptr) {
          float* g = gates + r * ld + j0;
          store_n(g, rr, n);
          store_n(g + hidden, z, n);
          store_n(g + 2 * hidden, nn, n);
        }
        if (hn_out != nullptr) store_n(hn_out + r * hidden + j0, acc[r][3], n);
        const V hp = load_n(h + r * hidden + j0, n);
        store_n(h_out + r * hidden + j0, fma(z, sub(hp, nn), nn), n);
      }
    }
  };

  inline void gru_forward_stacked(const Panel& w, const Panel& bias, const float* x,
                                  int64_t features, const float* h, float* gates, int64_t ld,
                                  float* hn_out, float* h_out, int64_t rows, int64_t hidden) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * kLanes;
      const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
      stacked_rows<kRows4, 3, 4, 2, 3>(
          rows, x, features, features, h, hidden, hidden, w.group(g), bias.group(g),
          [&](int64_t r0) {
            return GruStacked{h + r0 * hidden, gates == nullptr ? nullptr : gates + r0 * ld,
                              hn_out == nullptr ? nullptr : hn_out + r0 * hidden,
                              h_out + r0 * hidden, ld, hidden, j0, n};
          });
    }
  }

  inline void gru_forward_step(const Panel& w, const float* h, const float* b_hh, float* gates,
                               int64_t ld, float* hn_out, float* h_out, int64_t rows,
                               int64_t hidden) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * kLanes;
      const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
      over_rows<kRows3, 3>(rows, h, hidden, w.group(g), hidden, [&](int64_t r0) {
        return GruForward{h + r0 * hidden, b_hh, gates + r0 * ld,
                          hn_out == nullptr ? nullptr : hn_out + r0 * hidden,
                          h_out + r0 * hidden, ld, hidden, j0, n};
      });
    }
  }

  // d gi, d ghn, d gh of one row and unit tile from d h (total); carry = total z
  inline void gru_gate_grad(const GruBackStep& s, int64_t r, int64_t hidden, int64_t j0, int n,
                            V total, float* carry) {
    const float* g = s.gates + r * 3 * hidden + j0;
    const V rr = load_n(g, n), z = load_n(g + hidden, n), nn = load_n(g + 2 * hidden, n);
    const V one = set1(1.0f);
    const V d_an = mul(mul(total, sub(one, z)), fnma(nn, nn, one));
    const V d_ar = mul(mul(d_an, load_n(s.hn + r * hidden + j0, n)), mul(rr, sub(one, rr)));
    const V d_az = mul(mul(total, sub(load_n(s.h_prev + r * hidden + j0, n), nn)),
                       mul(z, sub(one, z)));
    float* dgi = s.d_gi + r * 3 * hidden + j0;
    float* dgh = s.dgh + r * 3 * hidden + j0;
    store_n(dgi, d_ar, n);
    store_n(dgi + hidden, d_az, n);
    store_n(dgi + 2 * hidden, d_an, n);
    store_n(dgh, d_ar, n);
    store_n(dgh + hidden, d_az, n);
    const V dn = mul(d_an, rr);
    store_n(dgh + 2 * hidden, dn, n);
    store_n(s.d_ghn + r * hidden + j0, dn, n);
    store_n(carry, mul(total, z), n);
  }

  inline void gru_backward_first(const GruBackStep& s, float* carry, int64_t rows,
                                 int64_t hidden) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j0 = 0; j0 < hidden; j0 += kLanes) {
        const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
        float* c = carry + r * hidden + j0;
        const V total = add(load_n(c, n), load_n(s.go + r * hidden + j0, n));
        gru_gate_grad(s, r, hidden, j0, n, total, c);
      }
    }
  }

  // ---- GRU backward: acc = d gh_t W_hh of 4 unit tiles; d h_{t-1} = acc + carry ----
  struct GruBackward {
    const GruBackStep* next;
    float* carry;
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
          float* cr = carry + r * hidden + j;
          const V dh = add(acc[r][c], load_n(cr, n));
          if (next == nullptr) {
            store_n(cr, dh, n);
          } else {
            const V total = add(dh, load_n(next->go + (r0 + r) * hidden + j, n));
            gru_gate_grad(*next, r0 + r, hidden, j, n, total, cr);
          }
        }
      }
    }
  };

  inline void gru_backward_step(const Panel& w, const float* dgh_now, const GruBackStep* next,
                                float* carry, int64_t rows, int64_t hidden) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * 4 * kLanes;
      over_rows<kRows4, 4>(rows, dgh_now, 3 * hidden, w.group(g), 3 * hidden, [&](int64_t r0) {
        return GruBackward{next, carry + r0 * hidden, r0, hidden, j0};
      });
    }
  }

  // ---- Elman forward: acc = h W_hh^T of 4 unit tiles; out holds the projection ----
  inline V activate(V pre, bool relu) { return relu ? vmax(pre, zero()) : tanh(pre); }
  inline V slope(V h, bool relu) {
    return relu ? positive(h) : fnma(h, h, set1(1.0f));
  }
  struct ElmanForward {  // stacked: acc holds the whole pre-activation, out is only written
    float* out;
    int64_t hidden, j0;
    bool relu, stacked;
    template <int R>
    void apply(V (&acc)[R][4]) const {
      #pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        #pragma GCC unroll 4
        for (int c = 0; c < 4; ++c) {
          const int64_t j = j0 + c * kLanes;
          if (j >= hidden) break;
          const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j));
          float* o = out + r * hidden + j;
          store_n(o, activate(stacked ? acc[r][c] : add(acc[r][c], load_n(o, n)), relu), n);
        }
      }
    }
  };

  inline void elman_forward_step(const Panel& w, const float* h, float* out, int64_t rows,
                                 int64_t hidden, bool relu) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * 4 * kLanes;
      over_rows<kRows4, 4>(rows, h, hidden, w.group(g), hidden, [&](int64_t r0) {
        return ElmanForward{out + r0 * hidden, hidden, j0, relu, false};
      });
    }
  }

  inline void elman_forward_stacked(const Panel& w, const Panel& bias, const float* x,
                                    int64_t features, const float* h, float* out, int64_t rows,
                                    int64_t hidden, bool relu) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * 4 * kLanes;
      stacked_rows<kRows4, 4, 4, 3, 3>(rows, x, features, features, h, hidden, hidden,
                                       w.group(g), bias.group(g), [&](int64_t r0) {
                                         return ElmanForward{out + r0 * hidden, hidden, j0, relu,
                                                             true};
                                       });
    }
  }

  inline void elman_backward_first(const ElmanBackStep& s, const float* dh, int64_t rows,
                                   int64_t hidden, bool relu) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j0 = 0; j0 < hidden; j0 += kLanes) {
        const int n = static_cast<int>(std::min<int64_t>(kLanes, hidden - j0));
        const int64_t o = r * hidden + j0;
        const V total = add(load_n(dh + o, n), load_n(s.go + o, n));
        store_n(s.d_pre + o, mul(total, slope(load_n(s.h + o, n), relu)), n);
      }
    }
  }

  struct ElmanBackward {
    const ElmanBackStep* next;
    float* dh;
    int64_t r0, hidden, j0;
    bool relu;
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
            const int64_t o = (r0 + r) * hidden + j;
            const V total = add(acc[r][c], load_n(next->go + o, n));
            store_n(next->d_pre + o, mul(total, slope(load_n(next->h + o, n), relu)), n);
          }
        }
      }
    }
  };

  inline void elman_backward_step(const Panel& w, const float* d_pre_now,
                                  const ElmanBackStep* next, float* dh, int64_t rows,
                                  int64_t hidden, bool relu) {
    for (int64_t g = 0; g < w.groups(); ++g) {
      const int64_t j0 = g * 4 * kLanes;
      over_rows<kRows4, 4>(rows, d_pre_now, hidden, w.group(g), hidden, [&](int64_t r0) {
        return ElmanBackward{next, dh + r0 * hidden, r0, hidden, j0, relu};
      });
    }
  }

  // ---- weight gradients: out (rows, cols) += a^T @ b, a (depth, rows) and b (depth, cols)
  // read in place with row strides lda and ldb, cols of any width (the last vector of the last
  // group masked). b's rows are the vectors (C per group), a's the broadcasts ----
  constexpr int gradient_rows(int c) {  // R for C vectors: R C accumulators + C weights + 1
    return std::min(12, ((kLanes == 16 ? 32 : 16) - c - 1) / c);
  }

  template <int R, int C>
  inline void gradient_panel(const float* a, int64_t lda, const float* b, int64_t ldb,
                             int64_t depth, int last, float* out, int64_t ldo) {
    V acc[R][C];
    #pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      #pragma GCC unroll 4
      for (int c = 0; c < C; ++c) acc[r][c] = zero();
    }
    for (int64_t k = 0; k < depth; ++k, a += lda, b += ldb) {
      V w[C];
      #pragma GCC unroll 4
      for (int c = 0; c + 1 < C; ++c) w[c] = load(b + c * kLanes);
      w[C - 1] = load_n(b + (C - 1) * kLanes, last);
      #pragma GCC unroll 12
      for (int r = 0; r < R; ++r) {
        const V x = set1(a[r]);
        #pragma GCC unroll 4
        for (int c = 0; c < C; ++c) acc[r][c] = fma(x, w[c], acc[r][c]);
      }
    }
    #pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      #pragma GCC unroll 4
      for (int c = 0; c < C; ++c) {
        const int n = c + 1 < C ? kLanes : last;
        float* o = out + r * ldo + c * kLanes;
        store_n(o, add(acc[r][c], load_n(o, n)), n);
      }
    }
  }

  // a block of n rows (1 <= n <= R) as gradient_panel<n, C>
  template <int R, int C>
  inline void gradient_block(int64_t n, const float* a, int64_t lda, const float* b,
                             int64_t ldb, int64_t depth, int last, float* out, int64_t ldo) {
    if constexpr (R > 1) {
      if (n < R) return gradient_block<R - 1, C>(n, a, lda, b, ldb, depth, last, out, ldo);
    }
    gradient_panel<R, C>(a, lda, b, ldb, depth, last, out, ldo);
  }

  // every row block of one group of C vectors (equal blocks, as over_rows)
  template <int C>
  inline void gradient_group(int64_t rows, const float* a, int64_t lda, const float* b,
                             int64_t ldb, int64_t depth, int last, float* out, int64_t ldo) {
    constexpr int R = gradient_rows(C);
    const int64_t blocks = (rows + R - 1) / R;
    int64_t r0 = 0;
    for (int64_t i = 0; i < blocks; ++i) {
      const int64_t r1 = rows * (i + 1) / blocks;
      gradient_block<R, C>(r1 - r0, a + r0, lda, b, ldb, depth, last, out + r0 * ldo, ldo);
      r0 = r1;
    }
  }

  inline void gradient_product(const float* a, int64_t lda, const float* b, int64_t ldb,
                               int64_t depth, int64_t rows, float* out, int64_t ldo,
                               int64_t cols) {
    for (int64_t j0 = 0; j0 < cols; j0 += 4 * kLanes) {
      const int64_t width = std::min<int64_t>(4 * kLanes, cols - j0);
      const int vectors = static_cast<int>((width + kLanes - 1) / kLanes);
      const int last = static_cast<int>(width - (vectors - 1) * kLanes);
      const float* bj = b + j0;
      float* oj = out + j0;
      switch (vectors) {
        case 4: gradient_group<4>(rows, a, lda, bj, ldb, depth, last, oj, ldo); break;
        case 3: gradient_group<3>(rows, a, lda, bj, ldb, depth, last, oj, ldo); break;
        case 2: gradient_group<2>(rows, a, lda, bj, ldb, depth, last, oj, ldo); break;
        default: gradient_group<1>(rows, a, lda, bj, ldb, depth, last, oj, ldo); break;
      }
    }
  }
