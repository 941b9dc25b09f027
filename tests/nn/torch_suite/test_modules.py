"""PyTorch's generic module tests (``test/test_modules.py``) run over rnnkit.nn's six classes,
and over ``torch.nn``'s own RNN, GRU and LSTM with :func:`rnnkit.accelerate` off and on.

Ported from pytorch/pytorch ``test/test_modules.py`` (BSD-3-Clause, (c) the PyTorch
contributors): each test below follows the upstream test of the same name, step for step, with
``unittest``'s assertions turned into pytest's and ``TestCase.assertEqual`` into
``torch.testing.assert_close`` at the dtype's default tolerance (float32: rtol 1.3e-6, atol 1e-5;
float64: rtol 1e-7, atol 1e-7), or upstream's explicit one where it gives one. The samples are
torch's own: the ``ModuleInfo`` entries for ``nn.RNN``/``GRU``/``LSTM``/``RNNCell``/``GRUCell``/
``LSTMCell`` in ``torch.testing._internal.common_modules.module_db`` (constructor arguments,
forward inputs, no-batch-dim reference functions, error inputs), copied with ``module_cls``
replaced by rnnkit's class (or kept: ``torch.nn`` cases, ids ``torch.nn-...`` and
``accelerated-...``; the latter run with ``rnnkit.accelerate()`` on, so PyTorch's own classes run
rnnkit's kernels and must pass as they do with it off). Upstream runs the tests on every device type; here: the CPU, CUDA when
present, and the meta device for the tests upstream runs there.

Upstream's tests that this file leaves out, and why: ``test_check_inplace`` (only modules with an
``inplace`` argument), ``test_cpu_gpu_parity`` and ``test_multiple_device_transfer`` (CUDA only:
they run when a GPU is present). Upstream's cuDNN expected failures do not apply: rnnkit does
not run cuDNN.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from copy import deepcopy
from inspect import isgenerator
from itertools import chain, product
from operator import methodcaller
from unittest.mock import call, patch

import pytest
import torch

import rnnkit
import rnnkit.nn as rnn
from rnnkit import _accelerate

with warnings.catch_warnings():
    # common_utils warns (ImportWarning) when hypothesis is not installed; it is not needed here
    warnings.simplefilter("ignore", ImportWarning)
    common_modules = pytest.importorskip(
        "torch.testing._internal.common_modules",
        reason="torch's test helpers need the expecttest package (the dev extra installs it)")
    from torch.testing._internal.common_utils import (
        freeze_rng_state, get_tensors_from, gradcheck, gradgradcheck, mock_wrapper)
from torch._subclasses.meta_utils import assert_metadata_eq

ModuleErrorEnum = common_modules.ModuleErrorEnum

_OURS = {
    torch.nn.RNN: rnn.RNN, torch.nn.GRU: rnn.GRU, torch.nn.LSTM: rnn.LSTM,
    torch.nn.RNNCell: rnn.RNNCell, torch.nn.GRUCell: rnn.GRUCell, torch.nn.LSTMCell: rnn.LSTMCell,
}


# how a case's ModuleInfo runs: rnnkit.nn's class, or torch.nn's with acceleration off or on
FLAVOURS = ("rnnkit.nn", "torch.nn", "accelerated")


def _info(info, module_cls, flavour: str):
    ours = copy.copy(info)
    ours.module_cls = module_cls
    ours.flavour = flavour
    return ours


RNNKIT_INFOS = [_info(info, _OURS[info.module_cls], "rnnkit.nn")
                for info in common_modules.module_db if info.module_cls in _OURS]
assert len(RNNKIT_INFOS) == 6, [info.name for info in RNNKIT_INFOS]
TORCH_INFOS = [_info(info, info.module_cls, flavour) for flavour in FLAVOURS[1:]
               for info in common_modules.module_db
               if info.module_cls in (torch.nn.RNN, torch.nn.GRU, torch.nn.LSTM)]
assert len(TORCH_INFOS) == 6, [info.name for info in TORCH_INFOS]
INFOS = RNNKIT_INFOS + TORCH_INFOS


# the tests that run the modules' recurrence: on the CPU, an accelerated case must have run
# rnnkit's kernels (else it would pass on PyTorch's)
RUN_RECURRENCE = {"test_forward", "test_pickle", "test_non_contiguous_tensors", "test_grad",
                  "test_gradgrad", "test_memory_format"}


@pytest.fixture(autouse=True)
def _accelerated(request, monkeypatch):
    """torch.nn's classes on rnnkit's kernels for the ``accelerated`` cases; PyTorch's own
    kernels for every other case."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec is not None else {}
    accelerated = getattr(params.get("module_info"), "flavour", None) == "accelerated"
    calls = []
    if accelerated:
        run = _accelerate._run
        monkeypatch.setattr(_accelerate, "_run", lambda *a: calls.append(a[0]) or run(*a))
    with rnnkit.accelerate(accelerated):
        yield
    if accelerated and params["device"] == "cpu" and request.node.originalname in RUN_RECURRENCE:
        assert calls, "torch.nn ran on PyTorch's kernels under rnnkit.accelerate()"
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# (test name, class name, device or None for all) -> reason. Empty: with issue 12's operators
# (a batching rule and a differentiable backward) every case passes. An entry marks a case
# xfail(strict=True), so it turns into a failure once fixed.
XFAIL: dict[tuple[str, str, str | None], str] = {}


def _cases(test_name: str, devices=DEVICES, allowed_dtypes=None, train_only=False, infos=INFOS):
    """One case per (ModuleInfo, device, dtype, training flag), as upstream's ``@modules``."""
    cases = []
    for info, device in product(infos, devices):
        dtypes = sorted(info.supported_dtypes(torch.device(device).type), key=str)
        if allowed_dtypes is not None:
            dtypes = [d for d in dtypes if d in allowed_dtypes]
        flags = [True] if train_only else ([True, False] if info.train_and_eval_differ else [True])
        for dtype, training in product(dtypes, flags):
            name = info.module_cls.__name__
            reason = XFAIL.get((test_name, name, device)) or XFAIL.get((test_name, name, None))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            mode = "train" if training else "eval"
            label = name if info.flavour == "rnnkit.nn" else f"{info.flavour}-{name}"
            cases.append(pytest.param(info, device, dtype, training, marks=marks,
                                      id=f"{label}-{device}-{str(dtype)[6:]}-{mode}"))
    return cases


def _tol(dtype: torch.dtype) -> dict:
    """torch.testing's defaults, stated: what upstream's assertEqual uses for these dtypes."""
    return {torch.float32: dict(rtol=1.3e-6, atol=1e-5),
            torch.float64: dict(rtol=1e-7, atol=1e-7)}[dtype]


def _assert_params_and_buffers_are(module, device, dtype) -> None:
    device = torch.device(device)
    for item_name, item in chain(module.named_parameters(), module.named_buffers()):
        assert item.device == device, f"{item_name} is on {item.device}, expected {device}"
        if item.dtype.is_floating_point:
            assert item.dtype == dtype, f"{item_name} is {item.dtype}, expected {dtype}"


# PyTorch's own LSTM says, on the CPU in float32, that oneDNN has no projection (the torch.nn
# cases; upstream does not run with warnings as errors)
pytestmark = pytest.mark.filterwarnings(
    "ignore:LSTM with projections is not supported with oneDNN:UserWarning")

ARGS = "module_info,device,dtype,training"


@pytest.mark.parametrize(ARGS, _cases("test_forward", devices=DEVICES + ["meta"]))
def test_forward(module_info, device, dtype, training) -> None:
    module_cls = module_info.module_cls
    module_inputs = module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                   requires_grad=False, training=training)
    to_dtype = {torch.float32: methodcaller("float"), torch.float64: methodcaller("double")}
    for module_input in module_inputs:
        if module_input.forward_input is None:
            continue
        with freeze_rng_state():
            args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
            m = module_cls(*args, **kwargs)
            m.to(device).to(dtype)
            m.train(training)
            args, kwargs = module_input.forward_input.args, module_input.forward_input.kwargs
            outputs = m(*args, **kwargs)
            if module_input.reference_fn is not None:
                ref_outputs = module_input.reference_fn(m, *args, **kwargs)
                torch.testing.assert_close(outputs, ref_outputs, **_tol(dtype))
            if dtype in to_dtype:
                to_dtype[dtype](m)
                m(*args, **kwargs)
                _assert_params_and_buffers_are(m, device, dtype)


@pytest.mark.parametrize(ARGS, _cases("test_factory_kwargs", devices=DEVICES + ["meta"]))
def test_factory_kwargs(module_info, device, dtype, training) -> None:
    module_cls = module_info.module_cls
    module_inputs = module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                   requires_grad=False, training=training)
    for module_input in module_inputs:
        args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        # Does the module create parameters or buffers from tensors not passed to it?
        creates = False
        parameter_new = mock_wrapper(torch.nn.Parameter.__new__)
        with patch.object(torch.nn.Parameter, "__new__", parameter_new):
            register_buffer = mock_wrapper(torch.nn.Module.register_buffer)
            with patch.object(torch.nn.Module, "register_buffer", register_buffer):
                m = module_cls(*args, **kwargs)
                m.train(training)
                given = get_tensors_from(args, kwargs)
                for mock in (parameter_new.mock, register_buffer.mock):
                    for call_args, call_kwargs in mock.call_args_list:
                        made = get_tensors_from(call_args, call_kwargs)
                        if made and not given.intersection(made):
                            creates = True
                            break
        if not creates:
            continue
        kwargs = {**kwargs, "device": device, "dtype": dtype}
        m = module_cls(*args, **kwargs)
        m.train(training)
        _assert_params_and_buffers_are(m, device, dtype)


@pytest.mark.parametrize(ARGS, _cases("test_repr", devices=DEVICES + ["meta"]))
def test_repr(module_info, device, dtype, training) -> None:
    module_cls = module_info.module_cls
    for module_input in module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                       requires_grad=False, training=training):
        args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        m = module_cls(*args, **kwargs)
        m.to(device).to(dtype)
        m.train(training)
        m.__repr__()
        str(m)


@pytest.mark.parametrize(ARGS, _cases("test_pickle"))
def test_pickle(module_info, device, dtype, training) -> None:
    module_cls = module_info.module_cls
    for module_input in module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                       requires_grad=False, training=training):
        if module_input.forward_input is None:
            continue
        with freeze_rng_state():
            args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
            m = module_cls(*args, **kwargs)
            m.to(device).to(dtype)
            m.train(training)
            args, kwargs = module_input.forward_input.args, module_input.forward_input.kwargs
            output = m(*args, **kwargs)
            with tempfile.TemporaryFile() as f:
                torch.save(m, f)
                f.seek(0)
                # a whole pickled module needs weights_only=False since torch 2.6 (upstream's
                # harness sets it through the environment)
                m_copy = torch.load(f, weights_only=False)
                torch.testing.assert_close(output, m_copy(*args, **kwargs), **_tol(dtype))


def _traverse_obj(obj, func):
    if isinstance(obj, (tuple, list)):
        return type(obj)(_traverse_obj(o, func) for o in obj)
    if isgenerator(obj):
        return tuple(_traverse_obj(o, func) for o in obj)
    if isinstance(obj, dict):
        return {name: _traverse_obj(o, func) for name, o in obj.items()}
    if isinstance(obj, (torch.Tensor, torch.nn.Parameter)):
        return func(obj)
    return None


def _retain_grad(obj) -> None:
    _traverse_obj(obj, lambda o: o.retain_grad() if o.requires_grad else None)


def _get_grads(obj):
    return _traverse_obj(obj, lambda o: o.grad if o.requires_grad else None)


def _zero_grad(obj) -> None:
    def zero(o):
        if o.grad is not None:
            o.grad = None
    _traverse_obj(obj, zero)


@pytest.mark.parametrize(ARGS, _cases("test_non_contiguous_tensors"))
def test_non_contiguous_tensors(module_info, device, dtype, training) -> None:
    module_cls = module_info.module_cls
    module_inputs = module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                   requires_grad=True, training=training)

    def make_non_contiguous(obj):
        def inner(o):
            if not isinstance(o, torch.Tensor) or o.dim() == 0:
                return o
            out = torch.repeat_interleave(o, 2, dim=-1)[..., ::2].detach()
            out.requires_grad = o.requires_grad
            return out
        return _traverse_obj(obj, inner)

    def can_be_non_contiguous(obj):
        if isinstance(obj, (tuple, list)):
            return any(can_be_non_contiguous(o) for o in obj)
        if isinstance(obj, dict):
            return any(can_be_non_contiguous(o) for o in obj.values())
        return isinstance(obj, torch.Tensor) and obj.dim() != 0

    flatten = torch.utils._pytree.tree_flatten
    for module_input in module_inputs:
        if module_input.forward_input is None:
            continue
        input_args, input_kwargs = module_input.forward_input.args, module_input.forward_input.kwargs
        if not (can_be_non_contiguous(input_args) or can_be_non_contiguous(input_kwargs)):
            continue
        args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        m = module_cls(*args, **kwargs)
        m.to(device).to(dtype)
        m.train(training)
        _retain_grad((input_args, input_kwargs))

        with freeze_rng_state():
            default_output = m(*input_args, **input_kwargs)
            if isinstance(default_output, torch.Tensor):
                grad_output = default_output.clone().detach_().normal_()
                default_output.backward(grad_output, retain_graph=True)
            else:
                grad_output = tuple(
                    _traverse_obj(o, lambda o: o.clone().detach_().normal_() if o.requires_grad else None)
                    for o in default_output)
                for o, g_o in zip(flatten(default_output)[0], flatten(grad_output)[0]):
                    if o.requires_grad:
                        o.backward(g_o, retain_graph=True)

        default_input_args_grad, default_input_kwargs_grad = deepcopy(
            _get_grads((input_args, input_kwargs)))
        default_param_grad = deepcopy([p.grad for p in m.parameters()])

        nc_input_args, nc_input_kwargs = make_non_contiguous((input_args, input_kwargs))
        nc_grad_output = make_non_contiguous(grad_output)
        inputs = [(input_args, input_kwargs), (nc_input_args, nc_input_kwargs)]
        for (in_args, in_kwargs), g_out in product(inputs, [grad_output, nc_grad_output]):
            g_out_copy = deepcopy(g_out)
            _zero_grad((in_args, in_kwargs))
            _zero_grad(m.parameters())
            with freeze_rng_state():
                out = m(*in_args, **in_kwargs)
                if isinstance(out, torch.Tensor):
                    out.backward(g_out_copy, retain_graph=True)
                else:
                    for o, g_o in zip(flatten(out)[0], flatten(g_out_copy)[0]):
                        if o.requires_grad:
                            o.backward(g_o, retain_graph=True)
            input_args_grad, input_kwargs_grad = _get_grads((in_args, in_kwargs))
            torch.testing.assert_close(out, default_output, **_tol(dtype))
            torch.testing.assert_close(input_args_grad, default_input_args_grad, atol=1e-4, rtol=0)
            torch.testing.assert_close(input_kwargs_grad, default_input_kwargs_grad, atol=1e-4, rtol=0)
            torch.testing.assert_close([p.grad for p in m.parameters()], default_param_grad,
                                       **_tol(dtype))


def _all_partials(constructor_kwargs: dict) -> bool:
    """Which samples get upstream's per-parameter (partial derivative) checks too.

    Upstream checks the partial derivatives of every sample; over the 32 samples of each
    recurrent module that is ~400 (grad)gradchecks per module and mode, minutes on 2 cores. To
    stay within CI's time, the total derivative is checked for every sample and the partial ones
    for the samples with the most parameters (bias, bidirectional; time-major, both
    nonlinearities and both projection sizes; with and without hx), and for every cell sample.
    """
    if "bidirectional" not in constructor_kwargs:
        return True  # a cell
    return (constructor_kwargs["bias"] and constructor_kwargs["bidirectional"]
            and not constructor_kwargs["batch_first"])


def _test_gradients_helper(module_info, device, dtype, training, check) -> None:
    module_cls = module_info.module_cls
    module_inputs = module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                   requires_grad=True, training=training)
    for module_input in module_inputs:
        if module_input.forward_input is None:
            continue
        args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        m = module_cls(*args, **kwargs)
        m.to(device).to(dtype)
        m.train(training)
        params = tuple(m.parameters())
        input_args, input_kwargs = module_input.forward_input.args, module_input.forward_input.kwargs
        other_kwargs = {}
        kwarg_tensors = []
        for name, obj in input_kwargs.items():
            if isinstance(obj, torch.Tensor):
                kwarg_tensors.append((name, obj))
            else:
                other_kwargs[name] = obj

        def fn_to_gradcheck(*flat_input_and_params):
            input_and_params = torch.utils._pytree.tree_unflatten(flat_input_and_params, flat_spec)
            new_input_args = input_and_params[:len(input_args)]
            kwarg_args = input_and_params[-len(kwarg_tensors):]
            new_kwargs = {name: obj for (name, _), obj in zip(kwarg_tensors, kwarg_args)}
            with freeze_rng_state():
                output = m(*new_input_args, **new_kwargs, **other_kwargs)
                return torch.utils._pytree.tree_flatten(output)[0]

        # the total derivative
        grad_input = input_args + params + tuple(obj for (_, obj) in kwarg_tensors)
        flat_input, flat_spec = torch.utils._pytree.tree_flatten(grad_input)
        assert check(fn_to_gradcheck, flat_input, nondet_tol=0.0)
        if not _all_partials(module_input.constructor_input.kwargs):
            continue

        # the partial derivatives, one parameter (then one keyword tensor) at a time
        old_params_requires_grad = [p.requires_grad for p in params]
        for p in params:
            p.requires_grad = False
        old_kwargs_requires_grad = [obj.requires_grad for (_, obj) in kwarg_tensors]
        for (_, obj) in kwarg_tensors:
            obj.requires_grad = False
        for p, old in zip(params, old_params_requires_grad):
            p.requires_grad = old
            grad_input = input_args + params + tuple(obj for (_, obj) in kwarg_tensors)
            flat_input, flat_spec = torch.utils._pytree.tree_flatten(grad_input)
            assert check(fn_to_gradcheck, flat_input, nondet_tol=0.0)
            p.requires_grad = False
        for (_, obj), old in zip(kwarg_tensors, old_kwargs_requires_grad):
            obj.requires_grad = old
            grad_input = input_args + params + tuple(obj for (_, obj) in kwarg_tensors)
            flat_input, flat_spec = torch.utils._pytree.tree_flatten(grad_input)
            assert check(fn_to_gradcheck, flat_input, nondet_tol=0.0)
            obj.requires_grad = False


@pytest.mark.parametrize(ARGS, _cases("test_grad", allowed_dtypes=[torch.double]))
def test_grad(module_info, device, dtype, training) -> None:
    _test_gradients_helper(module_info, device, dtype, training, gradcheck)


@pytest.mark.parametrize(ARGS, _cases("test_gradgrad", allowed_dtypes=[torch.double],
                                      infos=[i for i in INFOS if i.supports_gradgrad]))
def test_gradgrad(module_info, device, dtype, training) -> None:
    _test_gradients_helper(module_info, device, dtype, training, gradgradcheck)


@pytest.mark.parametrize(ARGS, _cases("test_memory_format"))
def test_memory_format(module_info, device, dtype, training) -> None:
    """Upstream's test, reduced to what it checks for inputs of fewer than 4 dimensions (all of
    these modules' inputs): contiguous outputs and gradients, equal to the reference ones."""
    module_cls = module_info.module_cls
    module_inputs = module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                   requires_grad=True, training=training)
    flatten = torch.utils._pytree.tree_flatten

    def req_grad(t):
        return isinstance(t, torch.Tensor) and t.requires_grad

    def check_contiguous(obj):
        _traverse_obj(obj, lambda o: (_ for _ in ()).throw(AssertionError("not contiguous"))
                      if not o.is_contiguous() else None)

    for module_input in module_inputs:
        if module_input.forward_input is None:
            continue
        with freeze_rng_state():
            args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
            m = module_cls(*args, **kwargs)
            m.to(device).to(dtype)
            m.train(training)
            args, kwargs = module_input.forward_input.args, module_input.forward_input.kwargs
            desired_outputs = m(*args, **kwargs)
            ref_diff_outputs = tuple(t for t in flatten(desired_outputs)[0] if req_grad(t))
            if training and ref_diff_outputs:
                params = tuple(m.parameters())
                ref_diff_inputs = tuple(t for t in flatten((args, kwargs, params))[0] if req_grad(t))
                ref_grad_outputs = tuple(torch.rand_like(t) for t in ref_diff_outputs)
                ref_grad_inputs = torch.autograd.grad(ref_diff_outputs, ref_diff_inputs,
                                                      grad_outputs=ref_grad_outputs)
            for module_mem_format in (torch.preserve_format, torch.contiguous_format):
                m.to(memory_format=module_mem_format)
                outputs = m(*args, **kwargs)
                torch.testing.assert_close(outputs, desired_outputs, **_tol(dtype))
                check_contiguous(outputs)
                diff_outputs = tuple(t for t in flatten(outputs)[0] if req_grad(t))
                if training and diff_outputs:
                    params = tuple(m.parameters())
                    diff_inputs = tuple(t for t in flatten((args, kwargs, params))[0] if req_grad(t))
                    grad_outputs = tuple(torch.empty_like(t1).copy_(t2)
                                         for t1, t2 in zip(diff_outputs, ref_grad_outputs))
                    grad_inputs = torch.autograd.grad(diff_outputs, diff_inputs,
                                                      grad_outputs=grad_outputs)
                    torch.testing.assert_close(grad_inputs, ref_grad_inputs, **_tol(dtype))
                    check_contiguous(grad_inputs)


@pytest.mark.parametrize(ARGS, _cases("test_if_train_and_eval_modes_differ", train_only=True))
def test_if_train_and_eval_modes_differ(module_info, device, dtype, training) -> None:
    module_cls = module_info.module_cls
    for module_input in module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                       requires_grad=False, training=training):
        if module_input.forward_input is None:
            continue
        args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        m = module_cls(*args, **kwargs)
        m.to(device).to(dtype)
        m.train(training)
        delattr(m, "training")  # does forward read it?
        try:
            args, kwargs = module_input.forward_input.args, module_input.forward_input.kwargs
            m(*args, **kwargs)
        except AttributeError as e:
            if "'training'" not in str(e):
                raise
            assert module_info.train_and_eval_differ, (
                f"{module_info.name}'s forward reads the training flag, but its ModuleInfo says "
                "train_and_eval_differ=False")


def _assert_equal(a, b, *args, **kwargs) -> None:
    """TestCase.assertEqual's role in assert_metadata_eq: metadata (dtypes, sizes, strides)."""
    assert a == b, (a, b)


@pytest.mark.parametrize(ARGS, _cases("test_device_ctx_init", devices=["cpu"]))
def test_device_ctx_init(module_info, device, dtype, training) -> None:
    module_cls = module_info.module_cls
    module_inputs = module_info.module_inputs_func(module_info, device=device, dtype=dtype,
                                                   requires_grad=False, training=training)
    with torch.device("meta"):
        module_inputs_meta = module_info.module_inputs_func(module_info, device=None, dtype=dtype,
                                                            requires_grad=False, training=training)
    for module_input, module_input_meta in zip(module_inputs, module_inputs_meta):
        c_args, c_kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        c_args_meta = module_input_meta.constructor_input.args
        c_kwargs_meta = module_input_meta.constructor_input.kwargs
        m_cpu = module_cls(*c_args, **c_kwargs)
        with torch.device("meta"):
            m = module_cls(*c_args_meta, **c_kwargs_meta)
        for p_meta, p_cpu in chain(zip(m.parameters(), m_cpu.parameters()),
                                   zip(m.buffers(), m_cpu.buffers())):
            assert p_meta.is_meta
            assert_metadata_eq(_assert_equal, p_meta, p_cpu)


@pytest.mark.parametrize(ARGS, _cases("test_errors", infos=[
    i for i in INFOS if i.module_error_inputs_func is not None]))
def test_errors(module_info, device, dtype, training) -> None:
    module_cls = module_info.module_cls
    error_inputs = module_info.module_error_inputs_func(module_info, device=device, dtype=dtype,
                                                        requires_grad=False, training=training)
    for error_input in error_inputs:
        module_input = error_input.module_error_input
        c_args, c_kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        if error_input.error_on == ModuleErrorEnum.CONSTRUCTION_ERROR:
            with pytest.raises(error_input.error_type, match=error_input.error_regex):
                module_cls(*c_args, **c_kwargs)
        elif error_input.error_on == ModuleErrorEnum.FORWARD_ERROR:
            m = module_cls(*c_args, **c_kwargs)
            fw_args, fw_kwargs = module_input.forward_input.args, module_input.forward_input.kwargs
            with pytest.raises(error_input.error_type, match=error_input.error_regex):
                m(*fw_args, **fw_kwargs)
        else:
            raise NotImplementedError(f"Unknown error type {error_input.error_on}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA only, as upstream")
@pytest.mark.parametrize(ARGS, _cases("test_cpu_gpu_parity", devices=["cuda"]))
def test_cpu_gpu_parity(module_info, device, dtype, training) -> None:
    """Upstream's test (tolerances float32 5e-2 / float64 4e-4 absolute, as its override)."""
    tol = {torch.float32: dict(atol=5e-2, rtol=0), torch.float64: dict(atol=4e-4, rtol=0)}[dtype]
    module_cls = module_info.module_cls
    module_inputs_cpu = module_info.module_inputs_func(module_info, device="cpu", dtype=dtype,
                                                       requires_grad=True, training=training)

    def to_device(obj):
        if isinstance(obj, torch.Tensor):
            res = obj.detach().to(device=device)
            res.requires_grad = obj.requires_grad
            return res
        if isinstance(obj, tuple):
            return tuple(to_device(o) for o in obj)
        if isinstance(obj, dict):
            return {key: to_device(o) for key, o in obj.items()}
        return deepcopy(obj)

    for module_input in module_inputs_cpu:
        cpu_args, cpu_kwargs = module_input.forward_input.args, module_input.forward_input.kwargs
        gpu_args, gpu_kwargs = to_device((cpu_args, cpu_kwargs))
        _retain_grad((cpu_args, cpu_kwargs, gpu_args, gpu_kwargs))
        args, kwargs = module_input.constructor_input.args, module_input.constructor_input.kwargs
        cpu_module = module_cls(*args, **kwargs).to(dtype).to("cpu")
        cpu_module.train(training)
        gpu_module = module_cls(*args, **kwargs).to(dtype).to(device)
        gpu_module.train(training)
        for cpu_p, gpu_p in zip(cpu_module.parameters(), gpu_module.parameters()):
            gpu_p.data.copy_(cpu_p)
        cpu_outputs = cpu_module(*cpu_args, **cpu_kwargs)
        gpu_outputs = gpu_module(*gpu_args, **gpu_kwargs)
        torch.testing.assert_close(cpu_outputs, gpu_outputs, **tol, check_device=False)
        flat_cpu = torch.utils._pytree.tree_flatten(cpu_outputs)[0]
        flat_gpu = torch.utils._pytree.tree_flatten(gpu_outputs)[0]
        for _ in range(5):
            for cpu_output, gpu_output in zip(flat_cpu, flat_gpu):
                if not cpu_output.requires_grad:
                    continue
                cpu_grad_output = cpu_output.clone().normal_()
                cpu_output.backward(cpu_grad_output, retain_graph=True)
                gpu_output.backward(cpu_grad_output.type_as(gpu_output), retain_graph=True)
                torch.testing.assert_close(_get_grads(cpu_args), _get_grads(gpu_args), **tol,
                                           check_device=False)
                for cpu_p, gpu_p in zip(cpu_module.parameters(), gpu_module.parameters()):
                    torch.testing.assert_close(cpu_p.grad, gpu_p.grad, **tol, check_device=False)
