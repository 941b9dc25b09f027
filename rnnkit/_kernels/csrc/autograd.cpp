// Eager autograd for the rnnkit operators, in C++: the fast path of rnnkit._kernels._ops.eager.
//
// The operators' autograd formula is registered from Python (_ops.py), where the tracers
// (compile, export, jit.trace) and torch.func need it. Called eagerly on a tiny problem, that
// Python formula (Function.apply, setup_context, backward) costs more than the recurrence
// itself, so eager calls with something to differentiate go through `_<cell>_eager` instead:
// the same operator, with a torch::autograd::Function around it whose backward calls the
// `<cell>_backward` operator. When the gradient must itself be differentiable (create_graph:
// double backward), the backward runs the forward operator again through its registered
// formula and differentiates that, so every derivative order stays the one formula's.
//
// One node serves every cell: the operators share one shape (rnnkit/_kernels/_cell_spec.py),
//     <cell>(x, S0?..., w_ih, w_hh, b_ih?, b_hh?, W?..., mask?, reverse, zero_padding, train,
//            F...) -> (out, S_n..., saved...)
//     <cell>_backward(grad_out, grad_S_n..., x, S0?..., w_ih, w_hh, b_ih?, b_hh?, W?..., out,
//                     saved..., mask?, reverse, zero_padding, F..., output_mask)
// (W: the cell's own optional weights, the LSTM's w_hr) and the counts of states S, of the
// differentiable inputs (all before mask), saved buffers and flags F are read from the forward
// schema.
// The `_<cell>_eager` schemas are the forward ones (defined in _ops.py); a cell's C++ file
// gives its own this kernel (RNNKIT_CELL, cell.h).
//
// Never traced: eager() is not called under tracers, torch.func transforms or autocast (those
// go to the operator).
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "cell.h"

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace rnnkit {
namespace {

using at::Tensor;
using c10::IValue;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Stack = std::vector<IValue>;

// One cell's operators and the shape of their schemas.
struct Cell {
  c10::OperatorHandle forward, backward;
  size_t states = 0, inputs = 0, saved = 0, flags = 0;

  Cell(const std::string& name)
      : forward(c10::Dispatcher::singleton().findSchemaOrThrow(("rnnkit::" + name).c_str(), "")),
        backward(c10::Dispatcher::singleton().findSchemaOrThrow(
            ("rnnkit::" + name + "_backward").c_str(), "")) {
    const auto& schema = forward.schema();
    const auto& args = schema.arguments();
    size_t mask = 0;
    while (mask < args.size() && args[mask].name() != "mask") ++mask;
    TORCH_CHECK(mask < args.size() && mask >= 5, "rnnkit::", name, ": no mask argument");
    for (size_t i = 0; i < mask; ++i) {  // the initial states: h0, c0
      const std::string& arg = args[i].name();
      states += arg.size() == 2 && arg[1] == '0';
    }
    inputs = mask;                         // x, the states, w_ih, w_hh, b_ih, b_hh, W...
    flags = args.size() - (mask + 4);      // after mask, reverse, zero_padding, train
    saved = schema.returns().size() - 1 - states;
  }

  // x, the initial states, w_ih, w_hh, b_ih, b_hh, the cell's own weights
  size_t differentiable() const { return inputs; }
};

IValue optional(const Tensor& t) { return t.defined() ? IValue(t) : IValue(); }

// bools: reverse, zero_padding, then the cell's flags (train is the caller's)
Stack forward_arguments(const variable_list& inputs, const Tensor& mask,
                        const std::vector<bool>& bools, bool train) {
  Stack stack;
  stack.reserve(inputs.size() + 2 + bools.size());
  for (const Tensor& t : inputs) stack.emplace_back(optional(t));
  stack.emplace_back(optional(mask));
  stack.emplace_back(bools[0]);
  stack.emplace_back(bools[1]);
  stack.emplace_back(train);
  for (size_t i = 2; i < bools.size(); ++i) stack.emplace_back(bool(bools[i]));
  return stack;
}

variable_list tensors(Stack& stack, size_t count) {
  variable_list out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(std::move(stack[i]).toTensor());
  return out;
}

// The gradient of each differentiable output, zeros where autograd passed none.
variable_list materialized(const variable_list& grads, const variable_list& like) {
  variable_list out(like.size());
  for (size_t i = 0; i < like.size(); ++i) {
    out[i] = grads[i].defined() ? grads[i] : at::zeros_like(like[i]);
  }
  return out;
}

// The differentiable arguments x, the states, w_ih, w_hh, b_ih, b_hh from the defined ones
// (an autograd Function takes no undefined tensor) and the bits of those present.
variable_list expanded(at::TensorList defined, int64_t present, size_t count) {
  variable_list inputs(count);
  for (size_t i = 0, k = 0; i < count; ++i) {
    if ((present >> i) & 1) inputs[i] = defined[k++];
  }
  return inputs;
}

struct Recurrence : torch::autograd::Function<Recurrence> {
  // defined: the differentiable arguments given (x, the states, w_ih, w_hh, b_ih, b_hh; an
  // edge each), `present` says which
  static variable_list forward(AutogradContext* ctx, at::TensorList defined, int64_t present,
                               const std::optional<Tensor>& mask, const Cell* cell,
                               const std::vector<bool>& bools) {
    const Tensor held = mask.has_value() ? *mask : Tensor();
    const variable_list inputs = expanded(defined, present, cell->differentiable());
    Stack stack = forward_arguments(inputs, held, bools, /*train=*/true);
    {
      at::AutoDispatchBelowADInplaceOrView below;
      cell->forward.callBoxed(stack);
    }
    const size_t outputs = 1 + cell->states;
    variable_list results = tensors(stack, outputs + cell->saved);
    variable_list kept = inputs;
    kept.push_back(held);
    kept.push_back(results[0]);
    kept.insert(kept.end(), results.begin() + outputs, results.end());
    ctx->save_for_backward(kept);
    int64_t bits = 0;
    for (size_t i = 0; i < bools.size(); ++i) bits |= int64_t(bools[i]) << i;
    ctx->saved_data["bools"] = bits;
    ctx->saved_data["count"] = int64_t(bools.size());
    ctx->saved_data["present"] = present;
    std::vector<int64_t> widths;  // each final state's width (an LSTM's projected h: P, c: H)
    for (size_t i = 1; i < outputs; ++i) widths.push_back(results[i].size(-1));
    ctx->saved_data["widths"] = widths;
    // the Cell lives as long as the library (the kernel functor holds it)
    ctx->saved_data["cell"] = int64_t(reinterpret_cast<intptr_t>(cell));
    if (cell->saved > 0) {
      ctx->mark_non_differentiable(variable_list(results.begin() + outputs, results.end()));
    }
    ctx->set_materialize_grads(false);
    return results;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto* cell = reinterpret_cast<const Cell*>(ctx->saved_data["cell"].toInt());
    const int64_t bits = ctx->saved_data["bools"].toInt();
    std::vector<bool> bools(ctx->saved_data["count"].toInt());
    for (size_t i = 0; i < bools.size(); ++i) bools[i] = (bits >> i) & 1;
    auto s = ctx->get_saved_variables();
    const size_t n = cell->differentiable(), outputs = 1 + cell->states;
    const variable_list inputs(s.begin(), s.begin() + n);
    const Tensor& mask = s[n];
    const Tensor& out = s[n + 1];
    const int64_t present = ctx->saved_data["present"].toInt();
    c10::List<bool> needs;
    std::vector<size_t> edge(n);  // each present input's edge
    size_t edges = 0;
    for (size_t i = 0; i < n; ++i) {
      const bool given = (present >> i) & 1;
      edge[i] = edges;
      needs.push_back(given && ctx->needs_input_grad(edges));
      edges += given;
    }
    // the given inputs' gradients; none for present, mask, cell, bools
    variable_list result(edges + 4);
    grads.resize(outputs);
    if (at::GradMode::is_enabled()) {
      // create_graph: the forward operator again, through its registered formula
      Stack stack = forward_arguments(inputs, mask, bools, /*train=*/true);
      cell->forward.callBoxed(stack);
      variable_list found = tensors(stack, outputs);
      variable_list wrt;
      for (size_t i = 0; i < n; ++i) {
        if (needs[i]) wrt.push_back(inputs[i]);
      }
      auto g = torch::autograd::grad(found, wrt, materialized(grads, found),
                                     /*retain_graph=*/true, /*create_graph=*/true,
                                     /*allow_unused=*/true);
      for (size_t i = 0, k = 0; i < n; ++i) {
        if (needs[i]) result[edge[i]] = g[k++];
      }
      return result;
    }
    variable_list g = materialized(grads, variable_list{out});
    const auto widths = ctx->saved_data["widths"].toIntVector();
    for (size_t i = 1; i < outputs; ++i) {
      g.push_back(grads[i].defined() ? grads[i]
                                     : at::zeros({out.size(1), widths[i - 1]}, out.options()));
    }
    Stack stack;
    stack.reserve(2 * n + 8 + cell->saved + bools.size());
    for (const Tensor& t : g) stack.emplace_back(t);
    for (const Tensor& t : inputs) stack.emplace_back(optional(t));
    stack.emplace_back(out);
    for (size_t i = 0; i < cell->saved; ++i) stack.emplace_back(s[n + 2 + i]);
    stack.emplace_back(optional(mask));
    for (bool b : bools) stack.emplace_back(b);
    stack.emplace_back(needs);
    {
      at::AutoDispatchBelowADInplaceOrView below;
      cell->backward.callBoxed(stack);
    }
    for (size_t i = 0; i < n; ++i) {
      if (needs[i]) result[edge[i]] = std::move(stack[i]).toTensor();
    }
    return result;
  }
};

// The `_<cell>_eager` kernel: unpacks the operator's arguments and applies the node.
struct Eager final : c10::OperatorKernel {
  explicit Eager(std::string name) : name_(std::move(name)) {}

  void operator()(const c10::OperatorHandle& /*op*/, c10::DispatchKeySet /*keys*/,
                  Stack* stack) {
    std::call_once(once_, [&] { cell_.emplace(name_); });
    const Cell& cell = *cell_;
    const size_t n = cell.differentiable(), count = n + 4 + cell.flags;
    auto args = torch::jit::last(*stack, count);
    std::vector<Tensor> defined;
    defined.reserve(n);
    int64_t present = 0;
    for (size_t i = 0; i < n; ++i) {
      if (args[i].isNone()) continue;
      defined.push_back(args[i].toTensor());
      present |= int64_t(1) << i;
    }
    std::optional<Tensor> mask;
    if (!args[n].isNone()) mask = args[n].toTensor();
    TORCH_CHECK(args[n + 3].toBool(), "rnnkit::_", name_,
                "_eager keeps the backward pass's buffers: train=True");
    std::vector<bool> bools{args[n + 1].toBool(), args[n + 2].toBool()};
    for (size_t i = 0; i < cell.flags; ++i) bools.push_back(args[n + 4 + i].toBool());
    torch::jit::drop(*stack, count);
    for (Tensor& t : Recurrence::apply(at::TensorList(defined), present, mask, &cell, bools)) {
      stack->emplace_back(std::move(t));
    }
  }

 private:
  std::string name_;
  std::once_flag once_;
  std::optional<Cell> cell_;
};

}  // namespace

// CompositeImplicitAutograd (RNNKIT_CELL, cell.h): the kernel is the autograd Function itself,
// on every device.
torch::CppFunction eager_kernel(const char* cell) {
  return torch::CppFunction::makeFromBoxedFunctor(std::make_unique<Eager>(cell));
}

}  // namespace rnnkit
