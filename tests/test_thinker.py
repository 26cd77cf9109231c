import pytest
import torch

from lib.curriculum import AdaptiveLength, ComputeRandom, UniformLength
from lib.models.thinker import Thinker, ThinkerConfig, sinusoidal
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig
from lib.train import TrainConfig, build, train


def test_compute_is_a_forward_argument_and_params_do_not_depend_on_it():
    torch.manual_seed(0)
    model = Thinker(ThinkerConfig(vocab=36, out_len=5, d=16, n_head=4)).eval()
    x = torch.randint(0, 36, (3, 9))
    n = model.n_params()
    outs = {(m, s): model(x, n_latent=m, n_step=s) for m in (1, 4, 9) for s in (1, 3)}
    assert all(o.shape == (3, 5, 36) for o in outs.values()) and model.n_params() == n
    assert not torch.allclose(outs[4, 1], outs[4, 3]) and not torch.allclose(outs[1, 3], outs[9, 3])
    with pytest.raises(ValueError, match="n_latent=65"):
        model(x, n_latent=65)


def test_readout_steps_and_step_consistency():
    torch.manual_seed(0)
    cfg = ThinkerConfig(vocab=36, out_len=4, d=16, n_head=4, readout=3)
    model = Thinker(cfg).eval()
    x = torch.randint(0, 36, (2, 7))
    every = model(x, n_step=3)
    assert every.shape == (3, 2, 4, 36)
    # the readout after step s does not depend on how many steps follow
    single = Thinker(ThinkerConfig(**{**cfg.__dict__, "readout": 1})).eval()
    single.load_state_dict(model.state_dict())
    for s in (1, 2, 3):
        torch.testing.assert_close(every[s - 1], single(x, n_step=s))


def test_sinusoidal_table():
    t = sinusoidal(10, 8)
    assert t.shape == (10, 8) and torch.allclose(t[0, 1::2], torch.ones(4)) and torch.allclose(t[:, 0], torch.sin(torch.arange(10.0)))
    assert not torch.allclose(t[:, 0], t[:, 2])  # different frequencies per channel pair


def test_random_position_offset_only_in_training():
    torch.manual_seed(0)
    model = Thinker(ThinkerConfig(vocab=36, out_len=3, d=16, n_head=4, pos_offset=True, max_len=40))
    x = torch.randint(0, 36, (2, 6))
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


def test_adaptive_length_grows_only_above_threshold():
    cur = AdaptiveLength(20, start=3, inc=0.05, threshold=0.85)
    cur.update(0.80)
    cur.update(0.85)
    assert cur.target == 3
    for _ in range(10):
        cur.update(0.9)
    assert cur.target == pytest.approx(3.5)
    cur.target = 19.99
    cur.update(0.99)
    assert cur.target == 20 and cur.difficulty == 1
    keep = cur.keep(1000, torch.Generator().manual_seed(0))
    assert keep.min() >= 1 and keep.max() <= 20


def test_adaptive_length_keeps_about_the_target_on_average():
    cur = AdaptiveLength(40, start=10)
    keep = cur.keep(20_000, torch.Generator().manual_seed(0)).float()
    assert abs(keep.mean().item() - 10) < 2.5


def test_uniform_length_and_compute_random():
    keep = UniformLength(20).keep(5000, torch.Generator().manual_seed(0))
    assert keep.min() == 3 and keep.max() == 19
    draws = [ComputeRandom([4, 8], [1, 2, 3]).draw(torch.Generator().manual_seed(i)) for i in range(50)]
    assert {d["n_latent"] for d in draws} == {4, 8} and {d["n_step"] for d in draws} == {1, 2, 3}


def test_tiny_thinker_learns_copy():
    task = Algorithmic(AlgorithmicConfig(task="copy", V=4, length=4, val_size=20), lengths=UniformLength(4, 1),
                       compute=ComputeRandom([2, 4], [1, 2]))
    cfg = ThinkerConfig(vocab=task.cfg.vocab, out_len=4, d=16, n_head=4, n_latent=4, n_step=2)
    hist = train(build(Thinker, cfg, 0), task, TrainConfig(steps=150, batch_size=64, lr=3e-3, eval_every=75, weight_decay=0.0))
    assert hist["val_token_acc"].iloc[-1] > hist["val_token_acc"].iloc[0] + 0.2


def test_reader_baseline_is_causal_and_shaped():
    from lib.models.gpt import GPTReader, ReaderConfig

    torch.manual_seed(0)
    model = GPTReader(ReaderConfig(vocab=36, out_len=5, n_embd=16, n_head=4, n_positions=20)).eval()
    x = torch.randint(0, 36, (2, 9))
    out = model(x, n_latent=3)  # compute keywords are accepted and ignored
    assert out.shape == (2, 5, 36)
    x2 = x.clone()
    x2[:, 8] = (x2[:, 8] + 1) % 36  # the last input token reaches every output position
    assert not torch.allclose(model(x2)[:, 0], out[:, 0])


def test_uniform_length_cap_and_fixed_length_sets():
    cur = UniformLength(20, min_keep=3, max_keep=12)
    k = cur.keep(2000, torch.Generator().manual_seed(0))
    assert k.min() == 3 and k.max() == 12
    task = Algorithmic(AlgorithmicConfig(task="flip", V=8, length=10, val_size=10))
    b = task.at_length(4, n=50)
    assert (b.x[:, :6] == 0).all() and (b.x[:, 6:] > 0).all() and torch.equal(b.y, b.x.flip(1))


def test_adaptive_curriculum_progress_survives_a_resume(tmp_path):
    cfg = AlgorithmicConfig(task="copy", V=4, length=6, val_size=20)
    make = lambda: Algorithmic(cfg, lengths=AdaptiveLength(6, start=1, inc=1.0, threshold=0.0))
    mcfg = ThinkerConfig(vocab=cfg.vocab, out_len=6, d=16, n_head=4, n_latent=2, n_step=1)
    tcfg = TrainConfig(steps=10, batch_size=16, eval_every=5)
    first = make()
    train(build(Thinker, mcfg, 0), first, tcfg, checkpoint=tmp_path / "c.pt")
    assert first.lengths.target == 6  # grew by 1 per batch with any correct token, capped at 6
    again = make()
    train(build(Thinker, mcfg, 0), again, tcfg, checkpoint=tmp_path / "c.pt")  # finished: loads, no training
    assert again.lengths.target == 6


def test_read_steps_drops_the_input_from_memory():
    """read_steps = r removes the input from the memory of steps s >= r and of the readouts after them
    (the output then depends on the input only through stored latents); r > n_step changes nothing."""
    torch.manual_seed(0)
    x = torch.randint(0, 36, (2, 7))
    free = Thinker(ThinkerConfig(vocab=36, out_len=4, d=16, n_head=4, n_step=3)).eval()
    dropped = Thinker(ThinkerConfig(vocab=36, out_len=4, d=16, n_head=4, n_step=3, read_steps=1)).eval()
    dropped.load_state_dict(free.state_dict())
    assert not torch.allclose(free(x), dropped(x))
    # r >= n_step + 1: every step and the readout still see the input: identical to r = 0
    late = Thinker(ThinkerConfig(vocab=36, out_len=4, d=16, n_head=4, n_step=3, read_steps=4)).eval()
    late.load_state_dict(free.state_dict())
    torch.testing.assert_close(late(x), free(x))
    # r = 1, one step: the readout sees only Z_1, and Z_1 saw the input, so the input still matters
    one = Thinker(ThinkerConfig(vocab=36, out_len=4, d=16, n_head=4, n_step=1, read_steps=1)).eval()
    emb = one.embed.weight
    out = one(x)
    (g,) = torch.autograd.grad(out.sum(), emb)
    assert g.abs().sum() > 0  # the input still reaches the output, through Z_1
    with pytest.raises(ValueError, match="read_steps"):
        ThinkerConfig(read_steps=-1)


def test_latent_readout_equals_read_steps_at_every_n_step():
    """latent_readout drops the input from the readout's memory only: the same as read_steps = n_step,
    for each n_step given at call time; and it differs from the free model (the readout saw the input)."""
    torch.manual_seed(0)
    x = torch.randint(0, 36, (2, 7))
    lat = Thinker(ThinkerConfig(vocab=36, out_len=4, d=16, n_head=4, latent_readout=True)).eval()
    free = Thinker(ThinkerConfig(vocab=36, out_len=4, d=16, n_head=4)).eval()
    free.load_state_dict(lat.state_dict())
    for S in (1, 2, 4):
        fixed = Thinker(ThinkerConfig(vocab=36, out_len=4, d=16, n_head=4, n_step=S, read_steps=S)).eval()
        fixed.load_state_dict(lat.state_dict())
        torch.testing.assert_close(lat(x, n_step=S), fixed(x))
        assert not torch.allclose(lat(x, n_step=S), free(x, n_step=S))
