// The Python module: one function per recurrence. Undefined tensors arrive as None.
#include <torch/extension.h>

#include "common.h"

namespace rnnkit {
std::vector<Tensor> elman(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                          const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                          const Tensor& mask, bool reverse, bool relu, bool zero);
std::vector<Tensor> gru(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                        const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                        const Tensor& mask, bool reverse, bool zero);
std::vector<Tensor> lstm(const Tensor& x, const Tensor& h0, const Tensor& c0,
                         const Tensor& w_ih, const Tensor& w_hh, const Tensor& b_ih,
                         const Tensor& b_hh, const Tensor& mask, bool reverse, bool zero);
}  // namespace rnnkit

namespace {

using OptionalTensor = std::optional<at::Tensor>;

at::Tensor or_undefined(const OptionalTensor& t) { return t.has_value() ? *t : at::Tensor(); }

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "rnnkit's compiled CPU recurrences (Elman, GRU, LSTM) with fused backward passes";
  m.def(
      "elman",
      [](const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih,
         const at::Tensor& w_hh, const OptionalTensor& b_ih, const OptionalTensor& b_hh,
         const OptionalTensor& mask, bool reverse, bool relu, bool zero) {
        return rnnkit::elman(x, h0, w_ih, w_hh, or_undefined(b_ih), or_undefined(b_hh),
                             or_undefined(mask), reverse, relu, zero);
      },
      "Elman recurrence: returns [states (T, B, H), h_n (B, H)]; zero: masked outputs are 0");
  m.def(
      "gru",
      [](const at::Tensor& x, const at::Tensor& h0, const at::Tensor& w_ih,
         const at::Tensor& w_hh, const OptionalTensor& b_ih, const OptionalTensor& b_hh,
         const OptionalTensor& mask, bool reverse, bool zero) {
        return rnnkit::gru(x, h0, w_ih, w_hh, or_undefined(b_ih), or_undefined(b_hh),
                           or_undefined(mask), reverse, zero);
      },
      "GRU recurrence: returns [states (T, B, H), h_n (B, H)]; zero: masked outputs are 0");
  m.def(
      "lstm",
      [](const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0,
         const at::Tensor& w_ih, const at::Tensor& w_hh, const OptionalTensor& b_ih,
         const OptionalTensor& b_hh, const OptionalTensor& mask, bool reverse, bool zero) {
        return rnnkit::lstm(x, h0, c0, w_ih, w_hh, or_undefined(b_ih), or_undefined(b_hh),
                            or_undefined(mask), reverse, zero);
      },
      "LSTM recurrence: returns [states (T, B, H), h_n (B, H), c_n (B, H)]; zero: masked "
      "outputs are 0");
  m.def("prefix_mask", &rnnkit::prefix_mask,
        "(T, B) bool mask of each sequence's first lengths[b] steps, min and max length");
  m.def("zero_masked_", &rnnkit::zero_masked_,
        "Zero out (T, B, F) in place where mask (T, B) is False");
}
