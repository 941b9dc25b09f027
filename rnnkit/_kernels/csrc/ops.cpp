// The CPU kernels of the rnnkit operators. The schemas (derived from each cell's description,
// rnnkit/_kernels/_cell_spec.py), the autograd formulas, the fake kernels and the composite
// implementation for every other device live in rnnkit/_kernels/_ops.py; this file only binds
// the plain functions of elman.cpp, gru.cpp and lstm.cpp to them. The backward passes take the
// biases (the composite backward recomputes the forward pass with them) and ignore them. No
// pybind11: the library is loaded with torch.ops.load_library.
//
// bfloat16 and float16 run the float32 loops (float32 accumulation, as oneDNN's RNNs do):
// the inputs are widened on entry and every output narrowed back to the input's dtype.
#include <torch/library.h>

#include <cstring>

#include "common.h"

namespace rnnkit {
namespace {

using OptionalTensor = std::optional<Tensor>;

bool reduced(const Tensor& x) {
  return x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf;
}

// The tensor widened to float32 when the call runs in reduced precision; undefined stays so.
// Every floating tensor must share x's dtype (the float loops would hide a mix).
Tensor wide(const Tensor& t, const Tensor& x) {
  if (!t.defined() || t.scalar_type() == at::kBool) return t;
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), "rnnkit: every tensor must have the input's ",
              "dtype ", x.scalar_type(), ", got ", t.scalar_type());
  return reduced(x) ? t.to(at::kFloat) : t;
}
Tensor wide(const OptionalTensor& t, const Tensor& x) {
  return t.has_value() ? wide(*t, x) : Tensor();
}

template <typename Tuple, size_t... I>
Tuple narrow_all(Tuple outputs, at::ScalarType dtype, std::index_sequence<I...>) {
  ((std::get<I>(outputs) = std::get<I>(outputs).to(dtype)), ...);
  return outputs;
}

// A backward pass's gradients as the tuple its schema returns.
template <size_t N>
auto as_tuple(std::array<Tensor, N> grads) {
  return std::apply([](auto&... t) { return std::make_tuple(t...); }, grads);
}

// An initial state, widened like the rest; zeros (B, H) when the call passed none (the
// default of every module: no Python allocation per call).
Tensor state(const OptionalTensor& s, const Tensor& x, const Tensor& w_hh) {
  if (s.has_value()) return wide(*s, x);
  const int64_t batch = x.dim() == 3 ? x.size(1) : 0;  // check_inputs reports a bad x
  const int64_t hidden = w_hh.dim() == 2 ? w_hh.size(1) : 0;
  Tensor zeros =
      at::empty({batch, hidden}, x.options().dtype(reduced(x) ? at::kFloat : x.scalar_type()));
  std::memset(zeros.data_ptr(), 0, zeros.nbytes());  // at::zeros: two more dispatches
  return zeros;
}

// The outputs in the input's dtype again, when the call ran widened.
template <typename Tuple>
Tuple narrow(Tuple outputs, const Tensor& x) {
  if (!reduced(x)) return outputs;
  return narrow_all(std::move(outputs), x.scalar_type(),
                    std::make_index_sequence<std::tuple_size_v<Tuple>>());
}

std::tuple<Tensor, Tensor> rnn_cpu(const Tensor& x, const OptionalTensor& h0,
                                   const Tensor& w_ih, const Tensor& w_hh,
                                   const OptionalTensor& b_ih, const OptionalTensor& b_hh,
                                   const OptionalTensor& mask, bool reverse, bool zero,
                                   bool /*train: its only buffer is out*/, bool relu) {
  return narrow(elman_forward(wide(x, x), state(h0, x, w_hh), wide(w_ih, x), wide(w_hh, x),
                              wide(b_ih, x), wide(b_hh, x), wide(mask, x), reverse, relu, zero),
                x);
}

auto rnn_backward_cpu(const Tensor& grad_out, const Tensor& grad_h_n, const Tensor& x,
                      const OptionalTensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                      const OptionalTensor& /*b_ih*/, const OptionalTensor& /*b_hh*/,
                      const Tensor& out, const OptionalTensor& mask, bool reverse, bool zero,
                      bool relu, std::array<bool, 6> output_mask) {
  return narrow(as_tuple(elman_backward(wide(grad_out, x), wide(grad_h_n, x), wide(x, x),
                                        state(h0, x, w_hh), wide(w_ih, x), wide(w_hh, x),
                                        wide(out, x), wide(mask, x), reverse, relu, zero,
                                        output_mask)),
                x);
}

std::tuple<Tensor, Tensor, Tensor, Tensor> gru_cpu(const Tensor& x, const OptionalTensor& h0,
                                                   const Tensor& w_ih, const Tensor& w_hh,
                                                   const OptionalTensor& b_ih,
                                                   const OptionalTensor& b_hh,
                                                   const OptionalTensor& mask, bool reverse,
                                                   bool zero, bool train) {
  return narrow(gru_forward(wide(x, x), state(h0, x, w_hh), wide(w_ih, x), wide(w_hh, x),
                            wide(b_ih, x), wide(b_hh, x), wide(mask, x), reverse, zero, train),
                x);
}

auto gru_backward_cpu(const Tensor& grad_out, const Tensor& grad_h_n, const Tensor& x,
                      const OptionalTensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                      const OptionalTensor& /*b_ih*/, const OptionalTensor& /*b_hh*/,
                      const Tensor& out, const Tensor& gates, const Tensor& hn_all,
                      const OptionalTensor& mask, bool reverse, bool zero,
                      std::array<bool, 6> output_mask) {
  return narrow(as_tuple(gru_backward(wide(grad_out, x), wide(grad_h_n, x), wide(x, x),
                                      state(h0, x, w_hh), wide(w_ih, x), wide(w_hh, x),
                                      wide(out, x), wide(gates, x), wide(hn_all, x),
                                      wide(mask, x), reverse, zero, output_mask)),
                x);
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_cpu(
    const Tensor& x, const OptionalTensor& h0, const OptionalTensor& c0, const Tensor& w_ih,
    const Tensor& w_hh, const OptionalTensor& b_ih, const OptionalTensor& b_hh,
    const OptionalTensor& mask, bool reverse, bool zero, bool train) {
  return narrow(lstm_forward(wide(x, x), state(h0, x, w_hh), state(c0, x, w_hh), wide(w_ih, x),
                             wide(w_hh, x), wide(b_ih, x), wide(b_hh, x), wide(mask, x),
                             reverse, zero, train),
                x);
}

auto lstm_backward_cpu(const Tensor& grad_out, const Tensor& grad_h_n, const Tensor& grad_c_n,
                       const Tensor& x, const OptionalTensor& h0, const OptionalTensor& c0,
                       const Tensor& w_ih, const Tensor& w_hh, const OptionalTensor& /*b_ih*/,
                       const OptionalTensor& /*b_hh*/, const Tensor& out, const Tensor& gates,
                       const Tensor& c_all, const OptionalTensor& mask, bool reverse, bool zero,
                       std::array<bool, 7> output_mask) {
  return narrow(as_tuple(lstm_backward(wide(grad_out, x), wide(grad_h_n, x), wide(grad_c_n, x),
                                       wide(x, x), state(h0, x, w_hh), state(c0, x, w_hh),
                                       wide(w_ih, x), wide(w_hh, x), wide(out, x),
                                       wide(gates, x), wide(c_all, x), wide(mask, x), reverse,
                                       zero, output_mask)),
                x);
}

}  // namespace
}  // namespace rnnkit

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("rnn", &rnnkit::rnn_cpu);
  m.impl("rnn_backward", &rnnkit::rnn_backward_cpu);
  m.impl("gru", &rnnkit::gru_cpu);
  m.impl("gru_backward", &rnnkit::gru_backward_cpu);
  m.impl("lstm", &rnnkit::lstm_cpu);
  m.impl("lstm_backward", &rnnkit::lstm_backward_cpu);
  m.impl("prefix_mask", &rnnkit::prefix_mask);
  m.impl("zero_masked_", &rnnkit::zero_masked_);
}
