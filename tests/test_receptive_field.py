import pytest

from lib.models.conv_text import receptive_radius
from lib.viz import receptive_field as rf


@pytest.mark.parametrize("layers, size, shape", [(6, 50, (51, 254)), (12, 50, (93, 254)), (6, 100, (51, 504))])
def test_image_sizes_match_the_reference(layers, size, shape):
    img = rf.to_image(rf.impulse_states(9, 1, layers, size))
    assert img.shape == (*shape, 3)
    assert img.min() >= 0 and img.max() <= 1


@pytest.mark.parametrize(
    "layers, ks, dil",
    [(6, 3, 1), (6, 9, 1), (12, 9, 1), (6, 17, 1), (6, 9, 2), (6, 9, 3), (6, 9, [6, 6, 6, 1, 1, 1]), (6, 9, [2, 3, 2, 3, 2, 3])],
)
def test_impulse_spreads_by_half_kernel_times_dilation_per_layer(layers, ks, dil):
    size = 401
    states = rf.impulse_states(ks, dil, layers, size)
    dils = [dil] * layers if isinstance(dil, int) else dil
    centre, spread = size // 2, 0
    for i, (lo, hi) in enumerate(rf.reach(states)):
        assert (lo, hi) == (centre - spread, centre + spread), f"after layer {i}"
        if i < layers:
            spread += ks // 2 * dils[i]
    assert spread == receptive_radius((ks,) * layers, tuple(dils))


def test_from_left_reaches_exactly_the_radius():
    states = rf.impulse_states(9, 1, 6, 50, from_left=True)
    assert rf.reach(states)[-1] == (0, 24)


def test_plot_has_labelled_axes():
    ax = rf.plot(9, [1, 2, 3, 4, 5, 1], 6, 100).axes[0]
    assert "cell" in ax.get_xlabel() and "radius 64" in ax.get_title()
