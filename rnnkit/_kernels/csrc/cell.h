// What a cell's C++ file supplies to become its operators' CPU kernels and eager autograd node.
//
// Every cell's operators have one shape (rnnkit/_kernels/_cell_spec.py). A cell's file writes
// two entry points over the operator's tensors and flags in schema order, and registers them:
//
//     RNNKIT_CELL(gru, gru_forward_entry, gru_backward_entry)
//
// ops.cpp turns the entries into boxed CPU kernels (absent initial states as zeros, bfloat16 and
// float16 widened to float32 and narrowed back), autograd.cpp gives the cell its `_<cell>_eager`
// node. A cell without a C++ file runs its composite implementation (_cell_spec's compiled=False).
#pragma once

// Only ATen's Tensor: torch/library.h (the dispatcher, IValue, schema inference) costs a cell's
// file more parse time than its loops take to compile; ops.cpp registers the kernels.
#include <ATen/core/Tensor.h>

#include <array>
#include <iterator>
#include <tuple>
#include <vector>

namespace torch {
class CppFunction;  // torch/library.h
}

namespace rnnkit {

using Tensors = std::vector<at::Tensor>;  // the operator's tensors in schema order (undefined: absent)
using Flags = std::vector<bool>;          // its bools in schema order

// Forward: tensors x, states, w_ih, w_hh, b_ih, b_hh, mask; flags reverse, zero_padding, train,
// the cell's own. Returns out, the final states, the saved buffers.
using ForwardEntry = Tensors (*)(const Tensors&, const Flags&);
// Backward: tensors: the output gradients, x, states, w_ih, w_hh, b_ih, b_hh, out, the saved
// buffers, mask; flags reverse, zero_padding, the cell's own; then output_mask. Returns the
// gradients of x, the states, w_ih, w_hh, b_ih, b_hh (empty where not asked for).
using BackwardEntry = Tensors (*)(const Tensors&, const Flags&, const Flags&);

// Conventions of the entries' cell functions (elman_forward, gru_backward, ...): plain forward
// and backward functions, no autograd. Absent optional tensors (a bias, the mask) are
// undefined. `zero`: outputs at masked steps are zero (torch.nn's padding) while the state is
// held. `train`: also return the buffers the backward pass reads, else (0,) placeholders. A
// backward pass returns one gradient per differentiable input, in input order, each a (0,)
// placeholder where its output_mask entry is false.

template <size_t N>
std::array<bool, N> as_array(const Flags& mask) {
  TORCH_CHECK(mask.size() == N, "rnnkit: output_mask must have ", N, " entries");
  std::array<bool, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = mask[i];
  return out;
}

template <size_t N>
Tensors as_vector(std::array<at::Tensor, N> grads) {
  return Tensors(std::make_move_iterator(grads.begin()), std::make_move_iterator(grads.end()));
}

template <typename... T>
Tensors as_vector(std::tuple<T...> outputs) {
  return std::apply([](auto&... t) { return Tensors{std::move(t)...}; }, outputs);
}

// Registers `cell`'s kernels while the library loads (ops.cpp): `forward` and `backward` as the
// CPU kernels of its operators `<cell>` and `<cell>_backward`, eager_kernel as its
// `_<cell>_eager` (CompositeImplicitAutograd). Returns true.
bool register_cell(const char* cell, ForwardEntry forward, BackwardEntry backward);

torch::CppFunction eager_kernel(const char* cell);  // autograd.cpp

}  // namespace rnnkit

#define RNNKIT_CELL(cell, forward, backward) \
  static const bool rnnkit_##cell##_registered = rnnkit::register_cell(#cell, forward, backward);
