import pytest
import torch

from lib.models.gpt import GPTBackbone, GPTConfig, attention_ref
from lib.models.looped import Looped, LoopedConfig, keep_context
from lib.tasks.regression import train_predictions

SMALL = dict(d_in=5, n_embd=32, n_head=4, n_positions=40)


def prompt(n=3, tokens=16, d=5, seed=0):
    return torch.randn(n, tokens, d, generator=torch.Generator().manual_seed(seed))


def test_sdpa_matches_the_written_out_attention():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 8, generator=g) for _ in range(3))
    for causal in (True, False):
        ref = attention_ref(q, k, v, causal)
        fast = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
        torch.testing.assert_close(fast, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cfg", [LoopedConfig(**SMALL, n_layer=3), LoopedConfig(**SMALL, b=4, T=2), LoopedConfig(**SMALL, b=3, T=3, inject="scalar")])
def test_no_future_leak_in_any_iteration(cfg):
    torch.manual_seed(0)
    model = Looped(cfg).eval()
    z = prompt()
    z2 = z.clone()
    z2[:, 9:] = torch.randn(3, 7, 5)
    a, b = model(z, iters=6, keep=6), model(z2, iters=6, keep=6)
    torch.testing.assert_close(a[:, :, :9], b[:, :, :9])
    assert not torch.allclose(a[:, :, 9:], b[:, :, 9:])


@pytest.mark.parametrize(
    "n_layer, width, params",
    [(12, 256, 9_477_632), (1, 256, 790_272), (1, 128, 198_528), (2, 128, 396_800)],
)
def test_parameter_counts_match_the_reference(n_layer, width, params):
    # reference (without positions and read-in/out): TF 9.48M, looped 0.79M, width 128: L=1 0.20M, L=2 0.40M
    gcfg = GPTConfig(n_layer=n_layer, n_embd=width, n_head=8)
    model = Looped(LoopedConfig(d_in=20, n_embd=width, n_layer=n_layer, n_head=8))
    assert gcfg.n_params(positions=False) == params
    assert model.n_params(positions=False) - (20 * width + width) - (width + 1) == params
    assert round(params / 1e6, 2) == {9_477_632: 9.48, 790_272: 0.79, 198_528: 0.20, 396_800: 0.40}[params]
    assert model.backbone.wpe.weight.numel() == 203 * width  # 52k at width 256


def test_gpt2_init():
    bb = GPTBackbone(GPTConfig(n_layer=4, n_embd=256, n_head=8))
    assert bb.blocks[0].attn.proj.weight.std().item() == pytest.approx(0.02 / (2 * 4) ** 0.5, rel=0.05)
    assert bb.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert bb.blocks[0].attn.qkv.bias.abs().max() == 0


def test_first_b_minus_T_iterations_run_without_gradient():
    torch.manual_seed(0)
    model = Looped(LoopedConfig(**SMALL, b=5, T=2))
    grad_modes = []
    hook = model.backbone.register_forward_pre_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    z = prompt()
    preds = train_predictions(model, z)
    hook.remove()
    assert grad_modes == [False, False, False, True, True] and preds.shape == (2, 3, 16)
    preds.pow(2).mean().backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    # oracle: the same maths with the state after 3 iterations explicitly detached
    model.zero_grad()
    E = model.read_in(z)
    H = torch.zeros_like(E)
    for _ in range(3):
        H = model.backbone(H + E).detach()
    outs = []
    for _ in range(2):
        H = model.backbone(H + E)
        outs.append(model.read_out(H).squeeze(-1))
    torch.stack(outs).pow(2).mean().backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad, msg=n)


def test_inference_iterations_are_independent_of_b():
    torch.manual_seed(0)
    model = Looped(LoopedConfig(**SMALL, b=2, T=1)).eval()
    z = prompt()
    with torch.no_grad():
        all_iters = model(z, iters=12, keep=12)
        assert all_iters.shape == (12, 3, 16)
        for t in (1, 2, 5, 12):
            torch.testing.assert_close(all_iters[t - 1], model(z, iters=t)[0])
        torch.testing.assert_close(model(z)[0], all_iters[1])  # default: b iterations


def test_standard_tf_is_the_one_iteration_case():
    torch.manual_seed(0)
    model = Looped(LoopedConfig(**SMALL, n_layer=2))
    z = prompt()
    direct = model.read_out(model.backbone(model.read_in(z))).squeeze(-1)
    torch.testing.assert_close(model(z)[0], direct)


def test_state_mask_masks_only_the_recurrent_state():
    torch.manual_seed(0)
    model = Looped(LoopedConfig(**SMALL, b=3)).eval()
    z = prompt()
    keep_all = torch.ones(16)
    with torch.no_grad():
        torch.testing.assert_close(model(z, iters=4, state_mask=keep_all), model(z, iters=4))
        # masking everything: every iteration sees only E, so all iterations equal the first
        zero = model(z, iters=4, keep=4, state_mask=torch.zeros(16))
        torch.testing.assert_close(zero[3], zero[0])


def test_scalar_injection_folds_into_the_read_in():
    torch.manual_seed(0)
    model = Looped(LoopedConfig(**SMALL, b=3, inject="scalar")).eval()
    assert 0 <= model.s.item() < 1
    z = prompt()
    with torch.no_grad():
        torch.testing.assert_close(model.folded()(z, iters=5, keep=5), model(z, iters=5, keep=5))
    assert model.folded().n_params() == model.n_params() - 1


def test_folded_control_starts_as_the_scalar_model_folded():
    from lib.train import build

    scalar = build(Looped, LoopedConfig(**SMALL, b=3, inject="scalar"), 7)
    folded = build(Looped, LoopedConfig(**SMALL, b=3, inject="folded"), 7)
    assert folded.n_params() == scalar.n_params() - 1 and folded.scale(0) == 1.0
    reference = scalar.folded().state_dict()
    for name, value in folded.state_dict().items():
        torch.testing.assert_close(value, reference[name], msg=name)


def test_iteration_scales_are_reused_past_b():
    model = Looped(LoopedConfig(**SMALL, b=3, inject="iteration"))
    assert model.s.shape == (3,) and model.scale(7) is not None
    assert model.scale(7).item() == model.s[2].item()


def test_config_errors():
    with pytest.raises(ValueError, match=r"inject must be one of \['none', 'scalar', 'iteration', 'folded'\]"):
        LoopedConfig(inject="vector")
    with pytest.raises(ValueError, match="divisible"):
        LoopedConfig(n_embd=30, n_head=4)


def test_context_masks_touch_only_the_context_pairs():
    # 4 pairs: 3 context pairs (tokens 0-5) and the query pair (tokens 6, 7)
    assert keep_context(4, 1, "last").tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert keep_context(4, 2, "first").tolist() == [1, 1, 1, 1, 0, 0, 1, 1]
    assert keep_context(4, 0, "first").tolist() == [0, 0, 0, 0, 0, 0, 1, 1]  # the query is never masked
    assert keep_context(4, 3, "last").tolist() == [1] * 8  # every context pair kept = unmasked
    assert keep_context(4, 3, "first", query=False).tolist() == [1, 1, 1, 1, 1, 1, 0, 0]  # the query-only control
    with pytest.raises(ValueError, match="where must be one of"):
        keep_context(4, 1, "middle")
    with pytest.raises(ValueError, match=r"n_kept must be in \[0, 3\]"):
        keep_context(4, 4, "last")


def test_the_reports_first_n_mask_masks_the_query_until_every_pair_is_kept():
    from lib.studies.looped import REPORT_FIRST, report_first_mask, state_masks

    assert report_first_mask(4, 2).tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # the query's state masked too
    assert report_first_mask(4, 3).tolist() == [1, 1, 1, 1, 1, 1, 0, 0]  # = the query-only control
    assert report_first_mask(4, 4).tolist() == [1] * 8
    assert [n for n, _ in state_masks(4, REPORT_FIRST, n_step=3)] == [0, 3, 4]
    assert [n for n, _ in state_masks(4, "first", n_step=2)] == [0, 2, 3]
    assert torch.equal(state_masks(4, "first")[-1][1], keep_context(4, 3, "first"))
    with pytest.raises(ValueError, match="wheres: unknown mask 'middle'; allowed"):
        state_masks(4, "middle")


def test_a_full_context_mask_changes_nothing_and_masking_the_query_changes_only_it():
    torch.manual_seed(0)
    model = Looped(LoopedConfig(**SMALL, b=3, T=3)).eval()
    z = prompt(tokens=8)
    free = model(z, iters=3)
    torch.testing.assert_close(model(z, iters=3, state_mask=keep_context(4, 3, "first")), free)
    no_query = model(z, iters=3, state_mask=keep_context(4, 3, "first", query=False))
    torch.testing.assert_close(no_query[..., :6], free[..., :6])  # causal: positions before the query unchanged
    assert not torch.allclose(no_query[..., 6], free[..., 6])


class Halve(torch.nn.Module):
    """A toy loop body: h -> h / 2 (any module (B, N, e) -> (B, N, e) can be looped)."""

    def forward(self, h):
        return 0.5 * h


def test_any_module_can_be_the_loop_body():
    # H_t = (H_{t-1} + E) / 2 with H_0 = 0  =>  H_t = (1 - 2^-t) E
    model = Looped(LoopedConfig(**SMALL, b=4), backbone=Halve())
    z = prompt()
    with torch.no_grad():
        E = model.read_in(z)
        preds = model(z, iters=4, keep=4)
        for t in range(1, 5):
            torch.testing.assert_close(preds[t - 1], model.read_out((1 - 2.0**-t) * E).squeeze(-1))


def test_unknown_body_names_the_registry():
    with pytest.raises(ValueError, match=r"body must be one of \['attention', 'conv', 'hybrid', 'mamba', 'mixer', 'ssd'\] \(aliases \{'gpt': 'attention'\}\), got 'rnn'"):
        LoopedConfig(body="rnn")


def test_training_with_compile_runs_and_keeps_state_dict_keys():
    from lib.curriculum import Ramp
    from lib.tasks.regression import InContextRegression, RegressionConfig
    from lib.train import TrainConfig, build, train

    task = InContextRegression(RegressionConfig(n_dims=2, val_size=16), Ramp(2), Ramp(4))
    model = build(Looped, LoopedConfig(d_in=2, n_embd=16, n_head=2, n_positions=8, b=3, T=2), 0)
    keys = set(model.state_dict())
    hist = train(model, task, TrainConfig(steps=2, batch_size=8, eval_every=2, compile=True))
    assert set(model.state_dict()) == keys and hist["train_loss"].notna().iloc[-1]
