// The CPU kernels of the rnnkit operators. The schemas (derived from each cell's description,
// rnnkit/_kernels/_cell_spec.py), the autograd formulas and the fake kernels are registered in
// rnnkit/_kernels/_ops.py; each cell's C++ file registers its own two entry points through the
// boxed kernels this file defines (RNNKIT_CELL, cell.h), and this file registers the helper
// operators prefix_mask and zero_masked_. The backward passes take the biases (the composite
// backward recomputes the forward pass with them) and ignore them. No pybind11: the library is
// loaded with torch.ops.load_library.
//
// One boxed kernel serves every cell's forward and backward operator: every operator has the
// same shape (see _cell_spec.py), so the kernel reads its arguments off the stack in schema
// order, fills an absent initial state (an argument named like h0, c0) with zeros, and in
// bfloat16/float16 runs the float32 loops (float32 accumulation, as oneDNN's RNNs do): the
// inputs are widened on entry and every output narrowed back to the input's dtype. A cell
// supplies two entry points over the tensors and flags in schema order (cell.h: RNNKIT_CELL in
// the cell's own file).
#include <ATen/core/stack.h>
#include <torch/library.h>

#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "cell.h"
#include "common.h"

namespace rnnkit {
namespace {

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

// Zeros (B, width) for an absent initial state (the default of every module: no Python
// allocation per call), in the dtype the loops run in. The first state is what w_hh multiplies
// (B, w_hh's columns); a later one (the LSTM's c) is (B, H): w_hr's columns when the cell's
// output is projected (w_hr (P, H)), else also w_hh's.
Tensor zero_state(const Tensor& x, const Tensor& w_hh, const Tensor& w_hr, bool first) {
  const int64_t batch = x.dim() == 3 ? x.size(1) : 0;  // check_inputs reports a bad x
  const Tensor& by = first || !w_hr.defined() ? w_hh : w_hr;
  const int64_t hidden = by.dim() == 2 ? by.size(1) : 0;
  Tensor zeros =
      at::empty({batch, hidden}, x.options().dtype(reduced(x) ? at::kFloat : x.scalar_type()));
  std::memset(zeros.data_ptr(), 0, zeros.nbytes());  // at::zeros: two more dispatches
  return zeros;
}

// Where an operator's tensors sit among its tensor arguments: read once from its schema.
struct Layout {
  size_t x = 0, w_hh = 0;
  std::optional<size_t> w_hr;  // the LSTM's output projection, where the schema has one
  size_t first_state = 0;      // the first initial state (h0)
  std::vector<bool> state;  // per argument: an initial state (h0, c0), zeros when absent

  explicit Layout(const c10::FunctionSchema& schema) {
    const auto& arguments = schema.arguments();
    size_t tensors = 0;
    bool found_x = false, found_w_hh = false, found_state = false;
    for (const auto& a : arguments) {
      const std::string& name = a.name();
      state.push_back(name.size() == 2 && name[1] == '0');
      if (state.back() && !found_state) first_state = tensors, found_state = true;
      const auto kind = a.type()->kind();
      if (kind == c10::TypeKind::BoolType || kind == c10::TypeKind::ListType) continue;
      if (name == "x") x = tensors, found_x = true;
      if (name == "w_hh") w_hh = tensors, found_w_hh = true;
      if (name == "w_hr") w_hr = tensors;
      ++tensors;
    }
    TORCH_CHECK(found_x && found_w_hh, "rnnkit: ", schema.name(), " has no x or w_hh");
  }
};

// The boxed kernel of one cell's forward (backward = false) or backward operator.
template <bool backward>
struct Kernel final : c10::OperatorKernel {
  Kernel(ForwardEntry forward, BackwardEntry backward_entry)
      : forward_(forward), backward_(backward_entry) {}

  void operator()(const c10::OperatorHandle& op, c10::DispatchKeySet /*keys*/,
                  torch::jit::Stack* stack) {
    std::call_once(once_, [&] { layout_.emplace(op.schema()); });
    const Layout& layout = *layout_;
    const size_t count = layout.state.size();
    auto values = torch::jit::last(*stack, count);
    Tensors tensors;
    Flags flags, needs;
    std::vector<size_t> absent;  // the positions of absent initial states
    tensors.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      const c10::IValue& v = values[i];
      if (v.isTensor()) {
        tensors.push_back(v.toTensor());
      } else if (v.isNone()) {
        if (layout.state[i]) absent.push_back(tensors.size());
        tensors.emplace_back();
      } else if (v.isBool()) {
        flags.push_back(v.toBool());
      } else {  // output_mask
        for (bool b : v.toBoolList()) needs.push_back(b);
      }
    }
    torch::jit::drop(*stack, count);
    const Tensor x = tensors[layout.x];  // the call's dtype, before widening
    for (Tensor& t : tensors) t = wide(t, x);
    const Tensor w_hr = layout.w_hr ? tensors[*layout.w_hr] : Tensor();
    for (size_t i : absent) {
      tensors[i] = zero_state(x, tensors[layout.w_hh], w_hr, i == layout.first_state);
    }
    Tensors outputs = backward ? backward_(tensors, flags, needs) : forward_(tensors, flags);
    for (Tensor& t : outputs) {
      stack->emplace_back(reduced(x) && t.defined() ? t.to(x.scalar_type()) : std::move(t));
    }
  }

 private:
  ForwardEntry forward_;
  BackwardEntry backward_;
  std::once_flag once_;
  std::optional<Layout> layout_;
};

}  // namespace

// What TORCH_LIBRARY_IMPL does for a file that includes torch/library.h: a torch::Library per
// dispatch key, alive as long as the loaded library, so its registrations are.
bool register_cell(const char* cell, ForwardEntry forward, BackwardEntry backward) {
  static std::deque<torch::Library> libraries;
  const std::string name(cell);
  torch::Library& cpu = libraries.emplace_back(torch::Library::IMPL, "rnnkit",
                                               c10::DispatchKey::CPU, __FILE__, __LINE__);
  cpu.impl(name.c_str(), torch::CppFunction::makeFromBoxedFunctor(
                             std::make_unique<Kernel<false>>(forward, nullptr)));
  cpu.impl((name + "_backward").c_str(), torch::CppFunction::makeFromBoxedFunctor(
                                             std::make_unique<Kernel<true>>(nullptr, backward)));
  torch::Library& eager = libraries.emplace_back(
      torch::Library::IMPL, "rnnkit", c10::DispatchKey::CompositeImplicitAutograd, __FILE__,
      __LINE__);
  eager.impl(("_" + name + "_eager").c_str(), eager_kernel(cell));
  return true;
}

// fma_limit.cpp's operators (registered here, where torch/library.h is included anyway)
namespace fma_limit {
std::vector<int64_t> fma_vector_bits();
double fma_gflops(int64_t bits, int64_t threads);
}  // namespace fma_limit

}  // namespace rnnkit

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("prefix_mask", &rnnkit::prefix_mask);
  m.impl("zero_masked_", &rnnkit::zero_masked_);
}

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("fma_vector_bits() -> int[]", &rnnkit::fma_limit::fma_vector_bits);
  m.def("fma_gflops(int bits, int threads) -> float", &rnnkit::fma_limit::fma_gflops);
}
