"""Mamba-1 scan and Mamba-2 SSD: fast forms vs their references, a third-party oracle, causality, step()."""
import pytest
import torch

from lib.models.looped import Looped, LoopedConfig
from lib.models.mamba import MambaBackbone, MambaConfig, MambaMixer, scan, scan_ref, selective_scan, selective_scan_ref
from lib.models.ssd import (GatedRMSNorm, SSDBackbone, SSDConfig, SSDMixer, gated_rms_norm_ref, segsum, segsum_unstable, ssd_chunked,
                            ssd_quadratic, ssd_ref)
from lib.models.ssm import CausalConv
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


def assert_scan_matches_reference(ins, w, out_tol: float, grad_tol: float) -> None:
    """The fused scan against the (B, L, E, N) reference: outputs, and every input's gradient of sum(y * w)."""
    a = [t.clone().requires_grad_() for t in ins]
    b = [t.clone().requires_grad_() for t in ins]
    y, y_ref = selective_scan(*a), selective_scan_ref(*b)
    torch.testing.assert_close(y, y_ref, rtol=out_tol, atol=out_tol)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    for name, p, q in zip(["x", "delta", "A", "B", "C"], a, b):
        torch.testing.assert_close(p.grad, q.grad, rtol=grad_tol, atol=grad_tol, msg=f"grad of {name}")


@pytest.mark.parametrize("L", [1, 7, 24])
def test_fused_selective_scan_equals_the_written_out_form_with_gradients(L):
    """SelectiveScan's hand-written backward against autograd through the (B, L, E, N) reference."""
    ins = scan_inputs(L=L)
    assert_scan_matches_reference(ins, torch.randn(2, L, 5, dtype=torch.float64), out_tol=1e-12, grad_tol=1e-10)
    assert torch.autograd.gradcheck(selective_scan, tuple(t.clone().requires_grad_() for t in scan_inputs(L=min(L, 4))))


@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("L", [2, 10])
@pytest.mark.parametrize("time_dim", [1, 0])
def test_causal_conv_shifted_sum_equals_conv1d(k, L, time_dim):
    """ShiftedSum's written-out backward against autograd through nn.Conv1d and the plain shifted sum,
    batch-major (B, L, C) and time-major (L, B, C), including sequences shorter than the kernel."""
    torch.manual_seed(0)
    conv = CausalConv(6, k).double()
    x = torch.randn(3, L, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, L, 6, dtype=torch.float64)
    params = [x, conv.weight, conv.bias]

    def ours(x):  # batch-major in and out, whatever the layout inside
        return conv(x.transpose(0, 1), time_dim=0).transpose(0, 1) if time_dim == 0 else conv(x)

    torch.testing.assert_close(ours(x), conv.conv_ref(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ours(x), conv.shifted_ref(x), rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad((ours(x) * w).sum(), params)
    for ref in (conv.conv_ref, conv.shifted_ref):
        for name, g, g_ref in zip(["x", "weight", "bias"], grads, torch.autograd.grad((ref(x) * w).sum(), params)):
            torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12, msg=f"grad of {name}")


@pytest.mark.parametrize("L", [1, 7])
def test_fused_scan_time_major_with_skip_equals_the_reference(L):
    """The time-major entry with the skip D x (the mixer's call): outputs and every gradient, D's included,
    against the (B, L, E, N) reference plus D x; and gradcheck on the hand-written backward."""
    x, delta, A, B, C = scan_inputs(L=L)
    D = torch.randn(x.shape[-1], dtype=torch.float64)
    w = torch.randn(L, 2, x.shape[-1], dtype=torch.float64)
    tm = [t.transpose(0, 1).contiguous().requires_grad_() for t in (x, delta, B, C)]
    ours_in = [tm[0], tm[1], A.clone().requires_grad_(), tm[2], tm[3], D.clone().requires_grad_()]
    ref_in = [t.clone().requires_grad_() for t in (x, delta, A, B, C, D)]
    y = selective_scan(*ours_in, time_major=True)
    y_ref = (selective_scan_ref(*ref_in[:5]) + ref_in[5] * ref_in[0]).transpose(0, 1)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    (y * w).sum().backward()
    (y_ref * w).sum().backward()
    for name, p, q in zip(["x", "delta", "A", "B", "C", "D"], ours_in, ref_in):
        g = p.grad.transpose(0, 1) if p.grad.dim() == 3 else p.grad  # time-major grads back to batch-major
        torch.testing.assert_close(g, q.grad, rtol=1e-10, atol=1e-10, msg=f"grad of {name}")
    small = [t.detach()[: min(L, 3)].clone().requires_grad_() if t.dim() == 3 else t.detach().clone().requires_grad_() for t in ours_in]
    assert torch.autograd.gradcheck(lambda *a: selective_scan(*a, time_major=True), tuple(small))


def test_every_scan_form_gives_the_same_mixer():
    torch.manual_seed(0)
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    outs = []
    for form in ("fused", "chunked", "sequential"):
        torch.manual_seed(1)
        outs.append(MambaMixer(MambaConfig(d_model=16, d_state=8, scan=form)).double()(u))
    torch.testing.assert_close(outs[0], outs[2], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(outs[1], outs[2], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("L", [5, 64])
def test_fused_scan_float32_matches_the_sequential_reference_with_gradients(L):
    """At float32, with the grid's state size, the fused scan stays within float rounding of the
    sequential (B, L, E, N) reference: outputs and every gradient."""
    ins = scan_inputs(Bsz=3, L=L, E=12, N=16, seed=1, dtype=torch.float32)
    assert_scan_matches_reference(ins, torch.randn(3, L, 12), out_tol=1e-5, grad_tol=1e-4)


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


@pytest.mark.parametrize("T, chunk", [(1, 8), (9, 4), (16, 16), (17, 64), (30, 7), (64, 64)])
@pytest.mark.parametrize("groups", [1, 3])
def test_ssd_chunked_gradients_equal_the_recurrence(T, chunk, groups):
    """Outputs, final state and every gradient of the chunked form (B and C per group, as the mixer
    passes them) against the recurrence on B and C repeated per head."""
    x, a, b, c = ssd_inputs(T, H=3, seed=2)
    b, c = b[:, :, :groups], c[:, :, :groups]
    ins = [t.clone().requires_grad_() for t in (x, a, b, c)]
    ref_ins = [t.clone().requires_grad_() for t in (x, a, b, c)]
    per_head = lambda t: t.repeat_interleave(3 // groups, dim=2)
    y, h = ssd_chunked(*ins, chunk)
    y_ref, h_ref = ssd_ref(ref_ins[0], ref_ins[1], per_head(ref_ins[2]), per_head(ref_ins[3]))
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-10)
    w = torch.randn_like(y)
    g = torch.autograd.grad((y * w).sum() + h.sum(), ins)
    g_ref = torch.autograd.grad((y_ref * w).sum() + h_ref.sum(), ref_ins, retain_graph=True)
    for name, p, q in zip(["x", "a", "b", "c"], g, g_ref):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9, msg=f"grad of {name}")
    # without the final state: the same outputs and gradients (one chunk skips the state passing)
    y2, none = ssd_chunked(*ins, chunk, final_state=False)
    assert none is None
    torch.testing.assert_close(y2, y, rtol=1e-12, atol=1e-12)
    g2 = torch.autograd.grad((y2 * w).sum(), ins)
    g2_ref = torch.autograd.grad((y_ref * w).sum(), ref_ins)
    for p, q in zip(g2, g2_ref):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("T, chunk", [(12, 4), (13, 5), (9, 16)])
@pytest.mark.parametrize("groups", [1, 3])
def test_ssd_chunked_fused_scaling_skip_and_initial_state(T, chunk, groups):
    """The mixer's fused form, y = SSD(dt x) + D x from an initial state h0, against the recurrence on
    dt x plus D x: outputs, final state and the gradients of all seven inputs."""
    x, a, b, c = ssd_inputs(T, H=3, seed=4)
    g = torch.Generator().manual_seed(5)
    dt = torch.rand(2, T, 3, generator=g, dtype=torch.float64) + 0.1
    D, h0 = torch.randn(3, generator=g, dtype=torch.float64), torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    b, c = b[:, :, :groups], c[:, :, :groups]
    ins = [t.clone().requires_grad_() for t in (x, a, b, c, dt, D, h0)]
    ref_ins = [t.clone().requires_grad_() for t in (x, a, b, c, dt, D, h0)]
    per_head = lambda t: t.repeat_interleave(3 // groups, dim=2)
    y, h = ssd_chunked(*ins[:4], chunk, h0=ins[6], dt=ins[4], D=ins[5])
    xr, ar, br, cr, dtr, Dr, h0r = ref_ins
    y_ref, h_ref = ssd_ref(xr * dtr[..., None], ar, per_head(br), per_head(cr), h0r)
    y_ref = y_ref + Dr[:, None] * xr
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-10)
    w, v = torch.randn_like(y), torch.randn_like(h)
    grads = torch.autograd.grad((y * w).sum() + (h * v).sum(), ins)
    grads_ref = torch.autograd.grad((y_ref * w).sum() + (h_ref * v).sum(), ref_ins)
    for name, p, q in zip(["x", "a", "b", "c", "dt", "D", "h0"], grads, grads_ref):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9, msg=f"grad of {name}")


def test_ssd_chunked_float32_matches_the_old_segsum_form():
    """float32 at the grid's shape and realistic decays (Δ A down to -1.6 per step): the fast chunked
    form stays within float rounding of the chunked form built on the masked-cumsum segsum."""
    x, a, b, c = ssd_inputs(64, dtype=torch.float32, B=4, H=10, P=16, N=16, seed=3)
    a = a * 1.6
    y = ssd_chunked(x, a, b[:, :, :1], c[:, :, :1], 64, final_state=False)[0]
    L = torch.exp(segsum(a.transpose(1, 2)))  # (B, H, T, S)
    per_head = lambda t: t[:, :, :1].expand(-1, -1, 10, -1)
    y_old = torch.einsum("bthn,bshn,bhts,bshp->bthp", per_head(c), per_head(b), L, x)
    torch.testing.assert_close(y, y_old, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [64, 16])
def test_ssd_chunked_strong_decays(chunk):
    """Log-decays summing to -640 over a chunk (exponents clamped at exp(-60), 1e-26 of the diagonal):
    outputs, final state and gradients still equal the recurrence."""
    x, a, b, c = ssd_inputs(64, seed=6)
    a = a * 20
    ins = [t.clone().requires_grad_() for t in (x, a, b, c)]
    ref_ins = [t.clone().requires_grad_() for t in (x, a, b, c)]
    y, h = ssd_chunked(*ins, chunk)
    y_ref, h_ref = ssd_ref(*ref_ins)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, h_ref, rtol=1e-10, atol=1e-12)
    w = torch.randn_like(y)
    for name, p, q in zip("xabc", torch.autograd.grad((y * w).sum() + h.sum(), ins), torch.autograd.grad((y_ref * w).sum() + h_ref.sum(), ref_ins)):
        torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9, msg=f"grad of {name}")


def test_ssd_chunked_float32_keeps_large_decay_sums_exact():
    """float32 with log-decay sums down to -140 inside one chunk: within float32 rounding of the same
    inputs in float64. Decays taken from differences of the rounded float32 sums alone (off by up to
    their rounding, 8e-6 here) would leave errors near 2e-6 of max |y|, 20 times more."""
    g = torch.Generator().manual_seed(3)
    x, b, c = torch.randn(4, 64, 10, 16, generator=g), torch.randn(4, 64, 1, 16, generator=g), torch.randn(4, 64, 1, 16, generator=g)
    a = -torch.rand(4, 64, 10, generator=g) * 4
    y = ssd_chunked(x, a, b, c, 64, final_state=False)[0].double()
    y64 = ssd_chunked(x.double(), a.double(), b.double(), c.double(), 64, final_state=False)[0]
    assert (y - y64).abs().max() < 4e-7 * y64.abs().max()


def test_gated_rms_norm_equals_its_reference_with_first_and_second_derivatives():
    g = torch.Generator().manual_seed(7)
    y, z = (torch.randn(3, 5, 12, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2))
    w = (torch.rand(12, generator=g, dtype=torch.float64) + 0.5).requires_grad_()
    fused = lambda y, z, w: GatedRMSNorm.apply(y, z, w, 1e-5)
    torch.testing.assert_close(fused(y, z, w), gated_rms_norm_ref(y, z, w, 1e-5), rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(fused, (y, z, w))
    assert torch.autograd.gradgradcheck(fused, (y, z, w))


def test_chunked_ssd_refuses_double_backward_and_the_quadratic_mode_has_it():
    """The chunked form's written-out backward has no second derivative: create_graph through it is an
    error that names the modes that have one, never a silently partial Hessian."""
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    for mode in ("chunked", "quadratic"):
        torch.manual_seed(0)
        model = SSDBackbone(SSDConfig(d_model=16, d_state=4, d_head=8, mode=mode)).double()
        params = list(model.parameters())
        if mode == "chunked":
            with pytest.raises(RuntimeError, match="mode='quadratic'"):
                torch.autograd.grad(model(x).pow(2).sum(), params, create_graph=True)
        else:
            grads = torch.autograd.grad(model(x).pow(2).sum(), params, create_graph=True)
            assert all(h is not None for h in torch.autograd.grad(sum((t * t).sum() for t in grads), params))


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
@pytest.mark.parametrize("chunk, groups", [(5, 1), (64, 1), (5, 2)])
def test_ssd_mixer_modes_agree(mode, chunk, groups):
    """Outputs and every parameter's gradient of the chunked mixer against the other two forms."""
    torch.manual_seed(0)
    fast = SSDBackbone(SSDConfig(d_model=16, d_state=4, d_head=8, chunk=chunk, n_groups=groups)).double()
    slow = SSDBackbone(SSDConfig(d_model=16, d_state=4, d_head=8, chunk=chunk, n_groups=groups, mode=mode)).double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(2, 23, 16, dtype=torch.float64)
    torch.testing.assert_close(fast(x), slow(x), rtol=1e-9, atol=1e-9)
    fast(x).pow(2).sum().backward()
    slow(x).pow(2).sum().backward()
    for (name, p), q in zip(fast.named_parameters(), slow.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-8, atol=1e-8, msg=f"grad of {name}")


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
