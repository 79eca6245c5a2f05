"""Every generated Jacobian and gradient against PyTorch autograd.

The reference is written with torch's own operations (torch.softmax, log,
matmul), never with our functions; our functions get NumPy arrays, and
separately torch tensors (the array-API route).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch.autograd.functional import jacobian  # noqa: E402

from derive.generated import (  # noqa: E402
    cross_entropy_from_logits,
    cross_entropy_from_logits_grad,
    cross_entropy_grad,
    layer_jacobian,
    softmax,
    softmax_jacobian,
    summation_jacobian,
    weight_grad,
)

TOLERANCE = {torch.float64: dict(rtol=1e-11, atol=1e-13), torch.float32: dict(rtol=2e-4, atol=2e-6)}
CASES = [(seed, dtype) for seed in range(6) for dtype in (torch.float64, torch.float32)]


def random_layer(seed, dtype):
    rng = np.random.default_rng(seed)
    n_classes, n_inputs, batch = rng.integers(2, 21), rng.integers(1, 11), rng.integers(1, 9)
    x = rng.normal(size=(batch, n_inputs))
    W = rng.normal(size=(n_inputs, n_classes))
    labels = rng.integers(n_classes, size=batch)
    as_numpy = np.float64 if dtype == torch.float64 else np.float32
    return x.astype(as_numpy), W.astype(as_numpy), labels


def torch_layer(x, W):
    return torch.softmax(x @ W, dim=-1)


def check(ours, reference, dtype):
    ours = torch.as_tensor(np.asarray(ours)) if isinstance(ours, np.ndarray) else ours
    torch.testing.assert_close(ours, reference.to(ours.dtype), **TOLERANCE[dtype])


@pytest.fixture(params=CASES, ids=[f"seed{s}-{str(d)[6:]}" for s, d in CASES])
def case(request):
    seed, dtype = request.param
    x, W, labels = random_layer(seed, dtype)
    return x, W, labels, dtype


@pytest.fixture(params=["numpy", "torch"])
def library(request):
    """Feed our functions NumPy arrays, or torch tensors."""
    return (lambda a: a) if request.param == "numpy" else torch.as_tensor


def test_softmax_jacobian(case, library):
    x, W, _, dtype = case
    z = torch.as_tensor(x @ W)
    for b in range(z.shape[0]):
        reference = jacobian(lambda v: torch.softmax(v, dim=-1), z[b])
        check(softmax_jacobian(softmax(library(z[b].numpy()))), reference, dtype)


def test_summation_and_layer_jacobians(case, library):
    x, W, _, dtype = case
    tx, tW = torch.as_tensor(x), torch.as_tensor(W)
    for b in range(x.shape[0]):
        dz = jacobian(lambda w: tx[b] @ w, tW)  # (C, D, C)
        ds = jacobian(lambda w: torch_layer(tx[b], w), tW)
        check(summation_jacobian(library(x[b]), library(W)), dz, dtype)
        check(layer_jacobian(library(x[b]), library(W)), ds, dtype)


def test_cross_entropy_grad_with_respect_to_probabilities(case, library):
    x, W, labels, dtype = case
    s = torch_layer(torch.as_tensor(x), torch.as_tensor(W)).detach()
    one_hot = torch.nn.functional.one_hot(torch.as_tensor(labels), s.shape[-1]).to(s.dtype)
    for b in range(s.shape[0]):
        reference = jacobian(lambda p: -(one_hot[b] * torch.log(p)).sum(), s[b])
        check(cross_entropy_grad(library(s[b].numpy()), library(one_hot[b].numpy())), reference, dtype)


def test_weight_grad_equals_backward_of_the_mean_loss(case, library):
    x, W, labels, dtype = case
    tW = torch.as_tensor(W).clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(torch.as_tensor(x) @ tW, torch.as_tensor(labels))
    loss.backward()
    check(weight_grad(library(x), library(W), library(labels)), tW.grad, dtype)


def test_from_logits_gradient_equals_backward(case, library):
    x, W, labels, dtype = case
    z = torch.as_tensor(x @ W).clone().requires_grad_(True)
    one_hot = torch.nn.functional.one_hot(torch.as_tensor(labels), z.shape[-1]).to(z.dtype)
    losses = -(one_hot * torch.log_softmax(z, dim=-1)).sum(dim=-1)
    losses.sum().backward()
    check(cross_entropy_from_logits(library(x @ W), library(labels)), losses.detach(), dtype)
    check(cross_entropy_from_logits_grad(library(x @ W), library(labels)), z.grad, dtype)


def test_torch_in_torch_out_same_dtype(case):
    x, W, labels, dtype = case
    result = weight_grad(torch.as_tensor(x), torch.as_tensor(W), torch.as_tensor(labels))
    assert isinstance(result, torch.Tensor) and result.dtype == dtype
