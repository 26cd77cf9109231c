"""The plug-in contracts: every task class satisfies lib.contracts.Task (the grid's tasks GridTask
too), and a body registered once in lib.models.bodies is built by the looped wrapper, the grid's
sequence model and the language model alike."""
import dataclasses
import importlib
import inspect
import pkgutil
from dataclasses import dataclass

import pytest
import torch
import torch.nn as nn

import lib.tasks
from lib import contracts
from lib.config import Config
from lib.models import bodies
from lib.models.bodies import Body, BodyConfig
from lib.models.gpt import GPTBackbone, GPTConfig
from lib.models.lm import LanguageModel, LMConfig
from lib.models.looped import Looped, LoopedConfig
from lib.models.mamba import MambaBackbone, MambaConfig
from lib.models.seq import SeqConfig, SeqModel
from lib.models.ssd import SSDBackbone, SSDConfig
from lib.studies import family, grid
from lib.tasks.algo_sequence import AlgoSequence
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig
from lib.tasks.lm import LMTask, TextConfig
from lib.tasks.recall import Recall, RecallConfig
from lib.tasks.regression import InContextRegression
from lib.tasks.selective_copy import SelectiveCopy, SelectiveCopyConfig
from lib.train import run_id

TASKS = {
    InContextRegression: lambda: InContextRegression.of("linear", n_dims=4, points=5, val_size=8),
    SelectiveCopy: lambda: SelectiveCopy(SelectiveCopyConfig(n_items=3, area=10, val_size=8)),
    Algorithmic: lambda: Algorithmic(AlgorithmicConfig(task="copy", V=8, length=5, val_size=8)),
    AlgoSequence: lambda: AlgoSequence(AlgorithmicConfig(task="flip", V=8, length=5, val_size=8)),
    Recall: lambda: Recall(RecallConfig(kind="mqar", vocab=32, seq_len=16, pairs=2, val_size=8)),
    LMTask: lambda: LMTask(TextConfig(n_docs=40, tokenizer="bytes", ctx=16, val_windows=2)),
}
GRID_TASKS = (InContextRegression, SelectiveCopy, AlgoSequence, Recall)


def task_classes() -> set[type]:
    """Every class in lib.tasks that draws training batches."""
    found = set()
    for info in pkgutil.iter_modules(lib.tasks.__path__):
        module = importlib.import_module(f"lib.tasks.{info.name}")
        found |= {c for _, c in inspect.getmembers(module, inspect.isclass)
                  if c.__module__ == module.__name__ and hasattr(c, "train_batch") and not c.__name__.startswith("_")}
    return found


def test_every_task_class_is_checked_here():
    assert task_classes() == set(TASKS)


@pytest.mark.parametrize("cls", list(TASKS), ids=lambda c: c.__name__)
def test_every_task_is_a_task(cls):
    task = TASKS[cls]()
    assert isinstance(task, contracts.Task)
    batch = task.train_batch(2, torch.Generator().manual_seed(0), 0)
    tensors = [t for t in batch if isinstance(t, torch.Tensor)]
    assert isinstance(batch, tuple) and tensors and all(t.device.type == "cpu" and len(t) == 2 for t in tensors)  # drawn on gen's device


@pytest.mark.parametrize("cls", GRID_TASKS, ids=lambda c: c.__name__)
def test_every_grid_task_is_a_grid_task(cls):
    task = TASKS[cls]()
    assert isinstance(task, contracts.GridTask) and task.seq_len > 0 and task.vocab >= 0
    assert "iters" in inspect.signature(task.evaluate).parameters


def test_a_task_without_a_loss_is_not_a_task():
    class NoLoss:
        spec = ()

        def train_batch(self, batch_size, gen, step=0): ...

        def evaluate(self, model): ...

    assert not isinstance(NoLoss(), contracts.Task)
    assert not isinstance(TASKS[Algorithmic](), contracts.GridTask)  # no seq_len: not for the grid


def test_the_grid_evaluates_at_other_iterations_through_the_task():
    task = TASKS[Recall]()
    torch.manual_seed(0)
    model = SeqModel(SeqConfig(body=BodyConfig(kind="attention", d_model=16, n_layer=1, ctx=16), vocab=32, n_out=32, b=2, T=2)).eval()
    seen = []
    hook = model.backbone.register_forward_pre_hook(lambda *_: seen.append(1))
    task.evaluate(model, iters=5)
    hook.remove()
    assert len(seen) == 5  # one batch of 8, five iterations


# --- one registry ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ToyConfig(Config):
    d_model: int = 8
    n_layer: int = 1


class ToyBody(nn.Module):
    """A causal body: each position mixes in the running mean of the positions up to it."""

    def __init__(self, cfg: ToyConfig):
        super().__init__()
        self.cfg = cfg
        self.mix = nn.ModuleList(nn.Linear(cfg.d_model, cfg.d_model) for _ in range(cfg.n_layer))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for lin in self.mix:
            mean = h.cumsum(1) / torch.arange(1, h.shape[1] + 1, device=h.device).view(1, -1, 1)
            h = h + lin(mean)
        return h


class ToyStepBody(ToyBody):
    """The toy body with incremental generation: the whole prefix is run again."""

    def step(self, h: torch.Tensor, state=None):
        state = h if state is None else torch.cat([state, h], 1)
        return self(state)[:, -h.shape[1]:], state


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(bodies.BODIES, "toy", Body(lambda c, **x: ToyConfig(d_model=c.d_model, n_layer=c.n_layer), ToyStepBody,
                                                   lambda c, n: c.d_model * n, cost=0.25, aliases=("plaything",)))


def test_one_registry_entry_builds_the_body_everywhere(toy):
    looped = Looped(LoopedConfig(d_in=3, n_embd=8, n_head=2, n_layer=2, n_positions=10, b=3, T=2, body="plaything"))
    assert isinstance(looped.backbone, ToyBody) and len(looped.backbone.mix) == 2 and looped.cfg.name == "toy-looped-L2-b3-T2"
    assert looped(torch.randn(2, 10, 3)).shape == (1, 2, 10)
    assert family.cost(looped.cfg) == pytest.approx(0.25 * 2 * (2 + 1 / 3) * 10)

    s = grid.GridSettings(bodies=("toy",), tasks=("induction",), params=4000, layers=1)
    task = grid.TASKS["induction"]["easy"].build()
    seq_cfg = grid.model_config(s, "toy", True, task)
    seq = SeqModel(seq_cfg)
    assert isinstance(seq.backbone, ToyBody) and seq_cfg.name.startswith("toy-e")
    assert seq(task.val.x[:2]).shape == (2, task.seq_len, task.vocab)

    lm = LanguageModel(LMConfig(arch="toy", vocab=12, ctx=8, d_model=8, n_layer=1))
    assert isinstance(lm.backbone, ToyBody) and lm.cfg.name == "toy-d8-L1"
    idx = torch.randint(0, 12, (2, 6))
    logits, state = lm.step(idx)
    torch.testing.assert_close(logits, lm(idx)[:, -1])


def test_a_language_model_generates_only_with_a_stepping_body(toy, monkeypatch):
    monkeypatch.setitem(bodies.BODIES, "toy", dataclasses.replace(bodies.BODIES["toy"], module=ToyBody))
    lm = LanguageModel(LMConfig(arch="toy", vocab=12, ctx=8, d_model=8, n_layer=1))
    assert lm(torch.randint(0, 12, (1, 4))).shape == (1, 4, 12)
    with pytest.raises(TypeError, match="generating needs a body with step"):
        lm.step(torch.randint(0, 12, (1, 4)))


def test_a_language_model_needs_a_causal_body(toy, monkeypatch):
    monkeypatch.setitem(bodies.BODIES, "toy", dataclasses.replace(bodies.BODIES["toy"], causal=False))
    with pytest.raises(ValueError, match="arch: a language model needs a causal body"):
        LMConfig(arch="toy", vocab=12, ctx=8, d_model=8, n_layer=1)


def test_a_bodys_constraints_reach_the_grid():
    task = grid.TASKS["induction"]["easy"].build()
    s = grid.GridSettings(bodies=("hybrid", "mixer"), tasks=("induction",), params=4000, layers=1)
    assert grid.model_config(s, "hybrid", True, task).body.n_layer == bodies.BODIES["hybrid"].min_layers == 2
    assert grid.model_config(s, "mixer", False, task).body.ctx == task.seq_len  # weights sized by the window
    assert grid.model_config(s, "ssd", False, task).body.ctx == task.seq_len  # one position policy for every body
    with pytest.raises(ValueError, match="n_layer: body 'hybrid' needs at least 2 layers"):
        BodyConfig(kind="hybrid", n_layer=1)


def test_old_spellings_are_aliases_and_keep_the_hashed_spelling():
    assert LoopedConfig(body="attention") == LoopedConfig(body="gpt") and LoopedConfig(body="attention").body == "gpt"
    assert run_id(LoopedConfig(body="attention")) == run_id(LoopedConfig())
    assert LMConfig(arch="attention").arch == "gpt" and LMConfig(arch="attention").name.startswith("gpt-")
    assert BodyConfig(kind="gpt").kind == "attention"
    assert grid.GridSettings(bodies=("gpt", "ssd")).bodies == ("attention", "ssd")
    with pytest.raises(ValueError, match=r"bodies must be one of .* got 'rnn'"):
        grid.GridSettings(bodies=("rnn",))


@pytest.mark.parametrize("body, old", [
    ("gpt", lambda c: GPTBackbone(GPTConfig(n_layer=c.n_layer, n_embd=c.n_embd, n_head=c.n_head, n_positions=c.n_positions))),
    ("mamba", lambda c: MambaBackbone(MambaConfig(d_model=c.n_embd, n_layer=c.n_layer, d_state=c.d_state))),
    ("ssd", lambda c: SSDBackbone(SSDConfig(d_model=c.n_embd, n_layer=c.n_layer, d_state=c.d_state, d_head=c.d_head))),
])
def test_the_looped_wrapper_builds_the_same_modules_as_before(body, old):
    """The registry's body for a LoopedConfig is the module the looped runs were trained with, drawn
    from the same random numbers, so their checkpoints load unchanged."""
    cfg = LoopedConfig(d_in=3, n_embd=16, n_head=2, n_layer=2, n_positions=10, body=body, d_state=4, d_head=8)
    torch.manual_seed(0)
    new = Looped(cfg).backbone.state_dict()
    torch.manual_seed(0)
    torch.nn.Linear(cfg.d_in, cfg.n_embd)  # the read-in is drawn first
    ref = old(cfg).state_dict()
    assert new.keys() == ref.keys() and all(torch.equal(new[k], ref[k]) for k in ref)
