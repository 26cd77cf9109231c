import pytest
import torch

from lib.models.conv_text import ConvTextConfig, ConvTextModel
from lib.analysis.reference import SELECTIVE_COPY


@pytest.mark.parametrize("layers, ks, dil, params", [(r[0], r[1], r[2], r[4]) for r in SELECTIVE_COPY])
def test_parameter_counts_match_the_reference_table(layers, ks, dil, params):
    cfg = ConvTextConfig(layers=layers, kernel_size=ks, dilation=dil)
    assert ConvTextModel(cfg).n_params() == cfg.n_params() == params


@pytest.mark.parametrize("layers, channels, params", [(18, 64, 681_088), (6, 128, 918_272), (12, 128, 1_803_776)])
def test_parameter_counts_of_the_follow_up_models(layers, channels, params):
    assert ConvTextModel(ConvTextConfig(layers=layers, channels=channels)).n_params() == params


def test_head_is_tied_and_untied_head_adds_vocab_times_channels():
    tied = ConvTextModel(ConvTextConfig())
    assert tied.head.weight is tied.embed.weight
    untied_cfg = ConvTextConfig(tie_head=False)
    assert ConvTextModel(untied_cfg).n_params() == untied_cfg.n_params() == 237_952 + 256 * 64


@pytest.mark.parametrize("ks", [1, 3, 9, 17])
@pytest.mark.parametrize("dil", [1, 2, 5, [1, 2, 3]])
@pytest.mark.parametrize("length", [1, 7, 52])
def test_output_length_is_preserved(ks, dil, length):
    model = ConvTextModel(ConvTextConfig(layers=3, kernel_size=ks, dilation=dil, channels=8))
    assert model(torch.randint(0, 256, (2, length))).shape == (2, length, 256)


def test_per_layer_kernel_sizes():
    model = ConvTextModel(ConvTextConfig(layers=3, kernel_size=[3, 5, 9], dilation=[1, 2, 3], channels=8))
    assert [(c.kernel_size[0], c.dilation[0], c.padding[0]) for c in model.convs] == [(3, 1, 1), (5, 2, 4), (9, 3, 12)]


def gradient_reach(model: ConvTextModel, length: int, t: int) -> tuple[int, int]:
    """First and last input position whose embedding changes the logits at position t."""
    ids = torch.randint(0, 256, (1, length), generator=torch.Generator().manual_seed(0))
    emb = model.embed(ids).detach().requires_grad_(True)
    handle = model.embed.register_forward_hook(lambda *_: emb)
    try:
        model(ids)[0, t].sum().backward()
    finally:
        handle.remove()
    nz = torch.nonzero(emb.grad[0].abs().sum(-1)).flatten()
    return int(nz[0]), int(nz[-1])


@pytest.mark.parametrize(
    "layers, ks, dil, radius",
    [(6, 9, 1, 24), (12, 9, 1, 48), (6, 17, 1, 48), (6, 9, 2, 48), (6, 9, [1, 2, 3, 4, 5, 1], 64),
     (6, 9, [2, 3, 4, 5, 6, 1], 84), (6, 9, [3, 5, 7, 9, 11, 1], 144)],
)
def test_receptive_radius_is_what_the_gradient_sees(layers, ks, dil, radius):
    cfg = ConvTextConfig(layers=layers, kernel_size=ks, dilation=dil, channels=4)
    assert cfg.radius == radius
    torch.manual_seed(0)
    model = ConvTextModel(cfg).double()
    t = radius + 5
    assert gradient_reach(model, 2 * radius + 11, t) == (t - radius, t + radius)
