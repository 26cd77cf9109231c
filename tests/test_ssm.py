"""Mamba-1 scan and Mamba-2 SSD: fast forms vs their references, a third-party oracle, causality, step()."""
import pytest
import torch

from lib.models.looped import Looped, LoopedConfig
from lib.models.mamba import MambaBackbone, MambaConfig, MambaMixer, scan, scan_ref, selective_scan, selective_scan_ref
from lib.models.ssd import SSDBackbone, SSDConfig, segsum, segsum_unstable, ssd_chunked, ssd_quadratic, ssd_ref
from lib.tasks.regression import train_predictions


def decays(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.exp(-torch.rand(shape, generator=g, dtype=dtype) * 2)  # a_t = exp(Δ A) in (e^-2, 1]
    b = torch.randn(shape, generator=g, dtype=dtype)
    return a, b


@pytest.mark.parametrize("length", [1, 2, 7, 33, 64, 100])
@pytest.mark.parametrize("chunk", [0, 1, 5, 16])
def test_chunked_scan_equals_the_recurrence_float64(length, chunk):
    a, b = decays((2, length, 3, 4), torch.float64)
    torch.testing.assert_close(scan(a, b, chunk), scan_ref(a, b), rtol=1e-10, atol=1e-10)


def test_chunked_scan_equals_the_recurrence_float32_with_gradients():
    a, b = decays((2, 50, 3, 4), torch.float32)
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    w = torch.randn(2, 50, 3, 4)
    (scan(a1, b1, 8) * w).sum().backward()
    (scan_ref(a2, b2) * w).sum().backward()
    torch.testing.assert_close(a1.grad, a2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b1.grad, b2.grad, rtol=1e-5, atol=1e-5)


def scan_inputs(Bsz=2, L=7, E=5, N=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(Bsz, L, E, generator=g, dtype=dtype)
    delta = torch.nn.functional.softplus(torch.randn(Bsz, L, E, generator=g, dtype=dtype))
    A = -torch.rand(E, N, generator=g, dtype=dtype) * 4
    B, C = (torch.randn(Bsz, L, N, generator=g, dtype=dtype) for _ in range(2))
    return x, delta, A, B, C


@pytest.mark.parametrize("L", [1, 7, 24])
def test_fused_selective_scan_equals_the_written_out_form_with_gradients(L):
    """SelectiveScan's hand-written backward against autograd through the (B, L, E, N) reference."""
    ins = scan_inputs(L=L)
    a = [t.clone().requires_grad_() for t in ins]
    b = [t.clone().requires_grad_() for t in ins]
    w = torch.randn(2, L, 5, dtype=torch.float64)
    y_fused, y_ref = selective_scan(*a), selective_scan_ref(*b)
    torch.testing.assert_close(y_fused, y_ref, rtol=1e-12, atol=1e-12)
    (y_fused * w).sum().backward()
    (y_ref * w).sum().backward()
    for name, p, q in zip(["x", "delta", "A", "B", "C"], a, b):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-10, msg=f"grad of {name}")
    assert torch.autograd.gradcheck(selective_scan, tuple(t.clone().requires_grad_() for t in scan_inputs(L=min(L, 4))))


def test_causal_conv_shifted_sum_equals_conv1d():
    from lib.models.ssm import CausalConv

    torch.manual_seed(0)
    conv = CausalConv(6, 4).double()
    x = torch.randn(3, 10, 6, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(conv(x), conv.conv_ref(x), rtol=1e-12, atol=1e-12)
    g1 = torch.autograd.grad(conv(x).sum(), [x, conv.weight])
    g2 = torch.autograd.grad(conv.conv_ref(x).sum(), [x, conv.weight])
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_every_scan_form_gives_the_same_mixer():
    torch.manual_seed(0)
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    outs = []
    for form in ("fused", "chunked", "sequential"):
        torch.manual_seed(1)
        outs.append(MambaMixer(MambaConfig(d_model=16, d_state=8, scan=form)).double()(u))
    torch.testing.assert_close(outs[0], outs[2], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(outs[1], outs[2], rtol=1e-10, atol=1e-10)


def test_scan_gradcheck():
    a, b = decays((1, 6, 2, 2), torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: scan(a, b, 4), (a.requires_grad_(), b.requires_grad_()))


def ssd_inputs(T, dtype=torch.float64, seed=0, B=2, H=3, P=4, N=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, H, P, generator=g, dtype=dtype)
    a = -torch.rand(B, T, H, generator=g, dtype=dtype)  # log-decays <= 0
    b, c = (torch.randn(B, T, H, N, generator=g, dtype=dtype) for _ in range(2))
    return x, a, b, c


def test_segsum_forms_agree():
    a = -torch.rand(2, 9, dtype=torch.float64)
    torch.testing.assert_close(segsum(a), segsum_unstable(a))
    assert segsum(a)[0, 4, 1] == pytest.approx(float(a[0, 2:5].sum()))


@pytest.mark.parametrize("T, chunk", [(16, 4), (16, 16), (17, 4), (13, 5), (1, 8), (30, 7)])
def test_ssd_chunked_equals_recurrence_equals_quadratic(T, chunk):
    x, a, b, c = ssd_inputs(T)
    y_ref, h_ref = ssd_ref(x, a, b, c)
    y_chunk, h_chunk = ssd_chunked(x, a, b, c, chunk)
    torch.testing.assert_close(y_chunk, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ssd_quadratic(x, a, b, c), y_ref, rtol=1e-10, atol=1e-10)
    # padding (zero inputs, unit decay) leaves the final state unchanged too
    torch.testing.assert_close(h_chunk, h_ref, rtol=1e-10, atol=1e-10)


def test_ssd_initial_state_is_carried():
    x, a, b, c = ssd_inputs(12)
    y_all, h_all = ssd_ref(x, a, b, c)
    _, h_half = ssd_ref(x[:, :6], a[:, :6], b[:, :6], c[:, :6])
    y2, h2 = ssd_chunked(x[:, 6:], a[:, 6:], b[:, 6:], c[:, 6:], 4, h0=h_half)
    torch.testing.assert_close(y2, y_all[:, 6:])
    torch.testing.assert_close(h2, h_all)


def test_mamba_mixer_matches_mambapy():
    mambapy = pytest.importorskip("mambapy.mamba")
    torch.manual_seed(0)
    theirs = mambapy.MambaBlock(mambapy.MambaConfig(d_model=16, n_layers=1, d_state=8, pscan=True)).double()
    ours = MambaMixer(MambaConfig(d_model=16, d_state=8)).double()
    ours.load_state_dict(theirs.state_dict())
    u = torch.randn(2, 37, 16, dtype=torch.float64)
    torch.testing.assert_close(ours(u), theirs(u), rtol=1e-9, atol=1e-9)
    ours_seq = MambaMixer(MambaConfig(d_model=16, d_state=8, scan="sequential")).double()
    ours_seq.load_state_dict(theirs.state_dict())
    torch.testing.assert_close(ours_seq(u), theirs(u), rtol=1e-9, atol=1e-9)


BACKBONES = [
    ("mamba", lambda: MambaBackbone(MambaConfig(d_model=16, n_layer=2, d_state=4, chunk=5))),
    ("ssd", lambda: SSDBackbone(SSDConfig(d_model=16, n_layer=2, d_state=4, d_head=8, chunk=6))),
    ("ssd-groups", lambda: SSDBackbone(SSDConfig(d_model=16, n_layer=1, d_state=4, d_head=4, n_groups=2, chunk=4))),
]


@pytest.mark.parametrize("name, make", BACKBONES)
def test_no_future_leak(name, make):
    torch.manual_seed(0)
    model = make().double()
    x = torch.randn(2, 25, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 13:] = torch.randn(2, 12, 16, dtype=torch.float64)
    torch.testing.assert_close(model(x)[:, :13], model(x2)[:, :13])
    assert not torch.allclose(model(x)[:, 13:], model(x2)[:, 13:])


@pytest.mark.parametrize("name, make", BACKBONES)
def test_step_by_step_equals_the_full_forward(name, make):
    torch.manual_seed(0)
    model = make().double()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    full = model(x)
    states, outs = None, []
    for t in range(11):
        y, states = model.step_token(x[:, t], states)
        outs.append(y)
    torch.testing.assert_close(torch.stack(outs, 1), full, rtol=1e-9, atol=1e-9)
    # the StepBackbone contract: any number of new positions per call, the same outputs
    y1, states = model.step(x[:, :4])
    y2, _ = model.step(x[:, 4:], states)
    torch.testing.assert_close(torch.cat([y1, y2], 1), full, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mode", ["sequential", "quadratic"])
def test_ssd_mixer_modes_agree(mode):
    torch.manual_seed(0)
    fast = SSDBackbone(SSDConfig(d_model=16, d_state=4, d_head=8, chunk=5)).double()
    slow = SSDBackbone(SSDConfig(d_model=16, d_state=4, d_head=8, chunk=5, mode=mode)).double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 23, 16, dtype=torch.float64)
    torch.testing.assert_close(fast(x), slow(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("body", ["mamba", "ssd"])
def test_state_space_bodies_loop_in_the_same_wrapper(body):
    torch.manual_seed(0)
    model = Looped(LoopedConfig(d_in=3, n_embd=16, n_layer=1, b=3, T=2, body=body, d_state=4, d_head=8))
    z = torch.randn(2, 10, 3)
    preds = train_predictions(model, z)
    assert preds.shape == (2, 2, 10) and torch.isfinite(preds).all()
    preds.pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    z2 = z.clone()
    z2[:, 6:] = torch.randn(2, 4, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(z, iters=5)[:, :, :6], model(z2, iters=5)[:, :, :6])
