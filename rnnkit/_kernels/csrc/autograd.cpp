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
// Never traced: eager() is not called under tracers, torch.func transforms or autocast (those
// go to the operator).
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <array>
#include <optional>
#include <tuple>

namespace rnnkit {
namespace {

using at::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Opt = std::optional<Tensor>;

template <typename Signature>
c10::TypedOperatorHandle<Signature> handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

Tensor or_none(const Opt& t) { return t.has_value() ? *t : Tensor(); }
Opt optional(const Tensor& t) { return t.defined() ? Opt(t) : Opt(); }

// Which of the N differentiable arguments need a gradient. The node has an edge per defined
// tensor argument, in order, so an absent bias shifts the ones after it.
template <size_t N>
std::array<bool, N> wanted(AutogradContext* ctx, const variable_list& inputs) {
  std::array<bool, N> needs{};
  size_t edge = 0;
  for (size_t i = 0; i < N; ++i) {
    if (inputs[i].defined()) needs[i] = ctx->needs_input_grad(edge++);
  }
  return needs;
}

// The gradient of each differentiable output, zeros where autograd passed none.
variable_list materialized(const variable_list& grads, const variable_list& like) {
  variable_list out(like.size());
  for (size_t i = 0; i < like.size(); ++i) {
    out[i] = grads[i].defined() ? grads[i] : at::zeros_like(like[i]);
  }
  return out;
}

// Gradients with a graph of their own (create_graph): `outputs` were recomputed from `inputs`
// through the operator's registered formula; differentiate them with a graph.
template <size_t N>
variable_list differentiable(const variable_list& outputs, const variable_list& grads,
                             const variable_list& inputs, const std::array<bool, N>& needs,
                             size_t arguments) {
  variable_list wrt;
  for (size_t i = 0; i < N; ++i) {
    if (needs[i]) wrt.push_back(inputs[i]);
  }
  auto found = torch::autograd::grad(outputs, wrt, materialized(grads, outputs),
                                     /*retain_graph=*/true, /*create_graph=*/true,
                                     /*allow_unused=*/true);
  variable_list result(arguments);
  for (size_t i = 0, k = 0; i < N; ++i) {
    if (needs[i]) result[i] = found[k++];
  }
  return result;
}

// One gradient per forward argument from a backward operator's tuple: the wanted ones.
template <typename Tuple, size_t N, size_t... I>
variable_list chosen(const Tuple& found, const std::array<bool, N>& needs, size_t arguments,
                     std::index_sequence<I...>) {
  variable_list result(arguments);
  ((result[I] = needs[I] ? std::get<I>(found) : Tensor()), ...);
  return result;
}

// ------------------------------------------------------------------------------------------
// Elman: (x, h0, w_ih, w_hh, b_ih?, b_hh?, mask?, reverse, zero_padding, train, relu)
//        -> (out, h_n)

using RnnOp = std::tuple<Tensor, Tensor>(const Tensor&, const Opt&, const Tensor&,
                                         const Tensor&, const Opt&, const Opt&, const Opt&,
                                         bool, bool, bool, bool);
using RnnBackwardOp = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Opt&, const Tensor&, const Tensor&,
    const Opt&, const Opt&, const Tensor&, const Opt&, bool, bool, bool, std::array<bool, 6>);

struct Rnn : torch::autograd::Function<Rnn> {
  static constexpr size_t kDifferentiable = 6, kArguments = 11;

  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Opt& h0,
                               const Tensor& w_ih, const Tensor& w_hh, const Opt& b_ih,
                               const Opt& b_hh, const Opt& mask, bool reverse, bool zero,
                               bool train, bool relu) {
    static auto op = handle<RnnOp>("rnnkit::rnn");
    at::AutoDispatchBelowADInplaceOrView below;
    auto [out, h_n] = op.call(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero, train, relu);
    ctx->save_for_backward(
        {x, or_none(h0), w_ih, w_hh, or_none(b_ih), or_none(b_hh), or_none(mask), out});
    ctx->saved_data["flags"] = int64_t(reverse) | int64_t(relu) << 1 | int64_t(zero) << 2;
    ctx->set_materialize_grads(false);
    return {out, h_n};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const int64_t flags = ctx->saved_data["flags"].toInt();
    const bool reverse = flags & 1, relu = flags & 2, zero = flags & 4;
    auto needs = wanted<kDifferentiable>(ctx, s);
    if (at::GradMode::is_enabled()) {
      static auto op = handle<RnnOp>("rnnkit::rnn");
      auto [out, h_n] = op.call(s[0], optional(s[1]), s[2], s[3], optional(s[4]),
                                optional(s[5]), optional(s[6]), reverse, zero, true, relu);
      return differentiable({out, h_n}, grads, s, needs, kArguments);
    }
    static auto op = handle<RnnBackwardOp>("rnnkit::rnn_backward");
    auto g = materialized(grads, {s[7], s[7][0]});
    at::AutoDispatchBelowADInplaceOrView below;
    auto found = op.call(g[0], g[1], s[0], optional(s[1]), s[2], s[3], optional(s[4]),
                         optional(s[5]), s[7], optional(s[6]), reverse, zero, relu, needs);
    return chosen(found, needs, kArguments, std::make_index_sequence<kDifferentiable>());
  }
};

// ------------------------------------------------------------------------------------------
// GRU: (x, h0, w_ih, w_hh, b_ih?, b_hh?, mask?, reverse, zero_padding, train)
//      -> (out, h_n, gates, hn_all)

using GruOp = std::tuple<Tensor, Tensor, Tensor, Tensor>(const Tensor&, const Opt&,
                                                         const Tensor&, const Tensor&,
                                                         const Opt&, const Opt&, const Opt&,
                                                         bool, bool, bool);
using GruBackwardOp = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Opt&, const Tensor&, const Tensor&,
    const Opt&, const Opt&, const Tensor&, const Tensor&, const Tensor&, const Opt&, bool, bool,
    std::array<bool, 6>);

struct Gru : torch::autograd::Function<Gru> {
  static constexpr size_t kDifferentiable = 6, kArguments = 10;

  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Opt& h0,
                               const Tensor& w_ih, const Tensor& w_hh, const Opt& b_ih,
                               const Opt& b_hh, const Opt& mask, bool reverse, bool zero,
                               bool train) {
    TORCH_CHECK(train, "rnnkit::_gru_eager keeps the backward pass's buffers: train=True");
    static auto op = handle<GruOp>("rnnkit::gru");
    at::AutoDispatchBelowADInplaceOrView below;
    auto [out, h_n, gates, hn_all] =
        op.call(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero, true);
    ctx->save_for_backward(
        {x, or_none(h0), w_ih, w_hh, or_none(b_ih), or_none(b_hh), or_none(mask), out, gates,
         hn_all});
    ctx->saved_data["flags"] = int64_t(reverse) | int64_t(zero) << 1;
    ctx->mark_non_differentiable({gates, hn_all});
    ctx->set_materialize_grads(false);
    return {out, h_n, gates, hn_all};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const int64_t flags = ctx->saved_data["flags"].toInt();
    const bool reverse = flags & 1, zero = flags & 2;
    auto needs = wanted<kDifferentiable>(ctx, s);
    if (at::GradMode::is_enabled()) {
      static auto op = handle<GruOp>("rnnkit::gru");
      auto result = op.call(s[0], optional(s[1]), s[2], s[3], optional(s[4]), optional(s[5]),
                            optional(s[6]), reverse, zero, true);
      return differentiable({std::get<0>(result), std::get<1>(result)}, grads, s, needs,
                            kArguments);
    }
    static auto op = handle<GruBackwardOp>("rnnkit::gru_backward");
    auto g = materialized(grads, {s[7], s[7][0]});
    at::AutoDispatchBelowADInplaceOrView below;
    auto found = op.call(g[0], g[1], s[0], optional(s[1]), s[2], s[3], optional(s[4]),
                         optional(s[5]), s[7], s[8], s[9], optional(s[6]), reverse, zero, needs);
    return chosen(found, needs, kArguments, std::make_index_sequence<kDifferentiable>());
  }
};

// ------------------------------------------------------------------------------------------
// LSTM: (x, h0, c0, w_ih, w_hh, b_ih?, b_hh?, mask?, reverse, zero_padding, train)
//       -> (out, h_n, c_n, gates, c_all)

using LstmOp = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Opt&, const Opt&, const Tensor&, const Tensor&, const Opt&,
    const Opt&, const Opt&, bool, bool, bool);
using LstmBackwardOp = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>(
    const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Opt&, const Opt&,
    const Tensor&, const Tensor&, const Opt&, const Opt&, const Tensor&, const Tensor&,
    const Tensor&, const Opt&, bool, bool, std::array<bool, 7>);

struct Lstm : torch::autograd::Function<Lstm> {
  static constexpr size_t kDifferentiable = 7, kArguments = 11;

  static variable_list forward(AutogradContext* ctx, const Tensor& x, const Opt& h0,
                               const Opt& c0, const Tensor& w_ih, const Tensor& w_hh,
                               const Opt& b_ih, const Opt& b_hh, const Opt& mask, bool reverse,
                               bool zero, bool train) {
    TORCH_CHECK(train, "rnnkit::_lstm_eager keeps the backward pass's buffers: train=True");
    static auto op = handle<LstmOp>("rnnkit::lstm");
    at::AutoDispatchBelowADInplaceOrView below;
    auto [out, h_n, c_n, gates, c_all] =
        op.call(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero, true);
    ctx->save_for_backward({x, or_none(h0), or_none(c0), w_ih, w_hh, or_none(b_ih),
                            or_none(b_hh), or_none(mask), out, gates, c_all});
    ctx->saved_data["flags"] = int64_t(reverse) | int64_t(zero) << 1;
    ctx->mark_non_differentiable({gates, c_all});
    ctx->set_materialize_grads(false);
    return {out, h_n, c_n, gates, c_all};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const int64_t flags = ctx->saved_data["flags"].toInt();
    const bool reverse = flags & 1, zero = flags & 2;
    auto needs = wanted<kDifferentiable>(ctx, s);
    if (at::GradMode::is_enabled()) {
      static auto op = handle<LstmOp>("rnnkit::lstm");
      auto result = op.call(s[0], optional(s[1]), optional(s[2]), s[3], s[4], optional(s[5]),
                            optional(s[6]), optional(s[7]), reverse, zero, true);
      return differentiable(
          {std::get<0>(result), std::get<1>(result), std::get<2>(result)}, grads, s, needs,
          kArguments);
    }
    static auto op = handle<LstmBackwardOp>("rnnkit::lstm_backward");
    auto g = materialized(grads, {s[8], s[8][0], s[8][0]});
    at::AutoDispatchBelowADInplaceOrView below;
    auto found = op.call(g[0], g[1], g[2], s[0], optional(s[1]), optional(s[2]), s[3], s[4],
                         optional(s[5]), optional(s[6]), s[8], s[9], s[10], optional(s[7]),
                         reverse, zero, needs);
    return chosen(found, needs, kArguments, std::make_index_sequence<kDifferentiable>());
  }
};

std::tuple<Tensor, Tensor> rnn_eager(const Tensor& x, const Opt& h0, const Tensor& w_ih,
                                     const Tensor& w_hh, const Opt& b_ih, const Opt& b_hh,
                                     const Opt& mask, bool reverse, bool zero, bool train,
                                     bool relu) {
  auto r = Rnn::apply(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero, train, relu);
  return {r[0], r[1]};
}

std::tuple<Tensor, Tensor, Tensor, Tensor> gru_eager(const Tensor& x, const Opt& h0,
                                                     const Tensor& w_ih, const Tensor& w_hh,
                                                     const Opt& b_ih, const Opt& b_hh,
                                                     const Opt& mask, bool reverse, bool zero,
                                                     bool train) {
  auto r = Gru::apply(x, h0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero, train);
  return {r[0], r[1], r[2], r[3]};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> lstm_eager(
    const Tensor& x, const Opt& h0, const Opt& c0, const Tensor& w_ih, const Tensor& w_hh,
    const Opt& b_ih, const Opt& b_hh, const Opt& mask, bool reverse, bool zero, bool train) {
  auto r = Lstm::apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, mask, reverse, zero, train);
  return {r[0], r[1], r[2], r[3], r[4]};
}

}  // namespace
}  // namespace rnnkit

// The schemas are the operators' own (see _ops.py), under a private name; defined here
// because only this library implements them.
TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("_rnn_eager(Tensor x, Tensor? h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
        "Tensor? b_hh, Tensor? mask, bool reverse, bool zero_padding, bool train, bool relu) "
        "-> (Tensor, Tensor)");
  m.def("_gru_eager(Tensor x, Tensor? h0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
        "Tensor? b_hh, Tensor? mask, bool reverse, bool zero_padding, bool train) "
        "-> (Tensor, Tensor, Tensor, Tensor)");
  m.def("_lstm_eager(Tensor x, Tensor? h0, Tensor? c0, Tensor w_ih, Tensor w_hh, Tensor? b_ih, "
        "Tensor? b_hh, Tensor? mask, bool reverse, bool zero_padding, bool train) "
        "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

// CompositeImplicitAutograd: the kernel is the autograd Function itself, on every device.
TORCH_LIBRARY_IMPL(rnnkit, CompositeImplicitAutograd, m) {
  m.impl("_rnn_eager", &rnnkit::rnn_eager);
  m.impl("_gru_eager", &rnnkit::gru_eager);
  m.impl("_lstm_eager", &rnnkit::lstm_eager);
}
