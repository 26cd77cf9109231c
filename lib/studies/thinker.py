"""The latent thinker study's wiring (notebooks/latent_thinker.ipynb): four experiments on
algorithmic tasks, each one call from the notebook's parameters `p` (a namespace, or `Settings`).

    copy_curricula(p)        copy with no / uniform / adaptive length curriculum + an equal-size causal TF
    addition(p)              base-b addition on held-out operand pairs, per width + an equal-size causal TF
    compute_randomised(p)    one model trained with (n_latent, n_step) drawn per batch, evaluated on a grid
    length_generalisation(p) copy trained on short kept lengths, scored on every kept length
"""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import torch

from lib.curriculum import AdaptiveLength, ComputeRandom, UniformLength
from lib.device import check_compile_key
from lib.models.gpt import GPTReader, ReaderConfig
from lib.models.thinker import Thinker, ThinkerConfig
from lib.studies import Study, StudySettings, check_seed_list, eval_every, from_namespace
from lib.sweep import train_sweep
from lib.tasks.algorithmic import Algorithmic, AlgorithmicConfig
from lib.train import TrainConfig

STUDY = "latent_thinker"
CURRICULA = ("none", "uniform", "adaptive")
EXPERIMENTS = ("copy", "addition", "compute", "length")  # train_config's runs: each experiment's training


@dataclass(frozen=True)
class Settings(StudySettings):
    """The latent_thinker notebook's parameters (its `parameters` cell holds its defaults)."""

    # 1. copy with and without a curriculum
    copy_length: int = 6
    copy_V: int = 8
    curricula: list[str] = field(default_factory=lambda: list(CURRICULA))
    copy_d: int = 32
    copy_heads: int = 4
    copy_latents: int = 4
    copy_n_step: int = 2
    copy_steps: int = 150
    copy_batch: int = 128
    copy_lr: float = 3e-3
    copy_warmup: int = 0
    copy_seeds: list[int] = field(default_factory=lambda: [0])
    uniform_max_keep: int = 6
    adaptive_start: float = 1.0
    adaptive_threshold: float = 0.85
    # 2. addition
    add_base: int = 16
    add_limit: int = 100
    add_widths: list[int] = field(default_factory=lambda: [32, 16])
    add_latents: int = 8
    add_n_step: int = 2
    add_steps: int = 150
    add_batch: int = 128
    add_lr: float = 5e-3
    add_min_lr_ratio: float = 0.04
    add_warmup: int = 0
    add_seeds: list[int] = field(default_factory=lambda: [0])
    add_target: float = 0.95  # held-out exact match ...
    add_minutes: float = 20.0  # ... within this much training
    # 3. compute randomisation
    rand_task: str = "copy"
    rand_length: int = 6
    rand_curriculum: str = "uniform"
    rand_latents: list[int] = field(default_factory=lambda: [2, 4])
    rand_n_steps: list[int] = field(default_factory=lambda: [1, 2])
    eval_latents: list[int] = field(default_factory=lambda: [1, 2, 4, 6])
    eval_n_steps: list[int] = field(default_factory=lambda: [1, 2, 3])
    rand_steps: int = 150
    # 4. length generalisation
    train_max_keep: int = 4
    length_seeds: list[int] = field(default_factory=lambda: [0])
    # common
    grad_clip: float | None = 0.5
    evals: int = 3
    val_size: int = 500
    compile: str | bool = False

    def __post_init__(self):
        super().__post_init__()
        if not self.curricula or not set(self.curricula) <= set(CURRICULA):
            raise ValueError(f"curricula = {self.curricula}; give at least one of {list(CURRICULA)}")
        if self.rand_curriculum not in CURRICULA:
            raise ValueError(f"rand_curriculum = {self.rand_curriculum!r}; allowed {list(CURRICULA)}")
        for key in ("copy_seeds", "add_seeds", "length_seeds"):
            check_seed_list(getattr(self, key), key)
        for key in ("add_widths", "rand_latents", "rand_n_steps", "eval_latents", "eval_n_steps"):
            if not getattr(self, key) or min(getattr(self, key)) < 1:
                raise ValueError(f"{key} = {getattr(self, key)}; give at least one value, each >= 1")
        for key in ("evals", "uniform_max_keep"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} = {getattr(self, key)}; must be >= 1")
        if not 1 <= self.train_max_keep <= self.copy_length:
            raise ValueError(f"train_max_keep = {self.train_max_keep}; must be in [1, copy_length = {self.copy_length}]")
        if not 0 < self.add_target <= 1 or not self.add_minutes > 0:
            raise ValueError(f"need 0 < add_target <= 1 and add_minutes > 0; got {self.add_target}, {self.add_minutes}")
        AdaptiveLength(self.copy_length, start=self.adaptive_start, threshold=self.adaptive_threshold)  # validates both
        self.copy_task(), self.rand_task_config(), self.addition_task()  # validate the tasks' sizes and names
        self.copy_model(self.copy_length), self.rand_model(), self.addition_models()  # validate the models' sizes
        check_compile_key(self.compile)
        for run in EXPERIMENTS:
            self.train_config(run)  # validates the training keys

    def train_config(self, run: str | None = None) -> TrainConfig:
        """The TrainConfig (seed 0) of one experiment's runs: `run` is one of EXPERIMENTS."""
        keys = {"copy": (self.copy_steps, self.copy_lr, self.copy_batch, self.copy_warmup, 0.0),
                "addition": (self.add_steps, self.add_lr, self.add_batch, self.add_warmup, self.add_min_lr_ratio),
                "compute": (self.rand_steps, self.copy_lr, self.copy_batch, self.copy_warmup, 0.0)}
        if run not in EXPERIMENTS:
            raise ValueError(f"run = {run!r}; the thinker's experiments are {list(EXPERIMENTS)}")
        steps, lr, batch, warmup, min_lr_ratio = keys.get(run, keys["copy"])  # length generalisation trains as copy does
        return TrainConfig(steps=steps, batch_size=batch, lr=lr, warmup_steps=warmup, min_lr_ratio=min_lr_ratio, weight_decay=0.0,
                           grad_clip=self.grad_clip, eval_every=eval_every(steps, self.evals), device=self.device, compile=self.compile)

    def dry_changes(self) -> dict:
        return {**super().dry_changes(), "copy_steps": min(self.copy_steps, 2), "add_steps": min(self.add_steps, 2),
                "rand_steps": min(self.rand_steps, 2), "copy_batch": min(self.copy_batch, 8), "add_batch": min(self.add_batch, 8),
                "copy_warmup": 0, "add_warmup": 0, "evals": 1, "val_size": min(self.val_size, 64), "add_limit": min(self.add_limit, 50),
                "add_widths": self.add_widths[:1], "eval_latents": self.eval_latents[:2], "eval_n_steps": self.eval_n_steps[:2],
                "copy_seeds": self.copy_seeds[:1], "add_seeds": self.add_seeds[:1], "length_seeds": self.length_seeds[:1]}

    def copy_task(self) -> AlgorithmicConfig:
        return AlgorithmicConfig(task="copy", V=self.copy_V, length=self.copy_length, val_size=self.val_size)

    def rand_task_config(self) -> AlgorithmicConfig:
        return AlgorithmicConfig(task=self.rand_task, V=self.copy_V, length=self.rand_length, val_size=self.val_size)

    def addition_task(self) -> AlgorithmicConfig:
        return AlgorithmicConfig(task="addition", base=self.add_base, limit=self.add_limit, val_size=self.val_size)

    def copy_model(self, length: int, n_latent: int | None = None, n_step: int | None = None) -> ThinkerConfig:
        cfg = AlgorithmicConfig(task="copy", V=self.copy_V, length=length)
        return ThinkerConfig(vocab=cfg.vocab, out_len=cfg.out_len, d=self.copy_d, n_head=self.copy_heads,
                             n_latent=n_latent or self.copy_latents, n_step=n_step or self.copy_n_step, latent_readout=True,
                             max_len=4 * length)

    def rand_model(self) -> ThinkerConfig:
        task_cfg = self.rand_task_config()
        return ThinkerConfig(vocab=task_cfg.vocab, out_len=task_cfg.out_len, d=self.copy_d, n_head=self.copy_heads,
                             n_latent=max(self.rand_latents), n_step=max(self.rand_n_steps), latent_readout=True,
                             max_len=4 * self.rand_length)

    def addition_models(self) -> list[ThinkerConfig]:
        cfg = self.addition_task()
        return [ThinkerConfig(vocab=cfg.vocab, out_len=cfg.out_len, d=w, n_head=min(8, w // 2), n_latent=self.add_latents,
                              n_step=self.add_n_step, max_len=4 * cfg.in_len) for w in self.add_widths]


def settings(p: dict | Settings) -> Settings:
    """The study's settings from a notebook's namespace or a profile's parameters (or as given)."""
    return p if isinstance(p, Settings) else from_namespace(Settings, p)


def equal_size_baseline(task_cfg: AlgorithmicConfig, n_params: int) -> ReaderConfig:
    """A standard 1-layer causal transformer whose width gives the parameter count closest to n_params."""
    return min((ReaderConfig(vocab=task_cfg.vocab, out_len=task_cfg.out_len, n_embd=w, n_head=4,
                             n_positions=task_cfg.in_len + task_cfg.out_len) for w in range(8, 129, 4)),
               key=lambda c: abs(GPTReader(c).n_params() - n_params))


def curriculum(s: Settings, name: str, length: int):
    """A length curriculum by name: none, uniform (kept lengths 3..uniform_max_keep) or adaptive."""
    makers = {"none": lambda: None, "uniform": lambda: UniformLength(length, max_keep=min(length, s.uniform_max_keep)),
              "adaptive": lambda: AdaptiveLength(length, start=s.adaptive_start, threshold=s.adaptive_threshold)}
    if name not in makers:
        raise ValueError(f"curriculum must be one of {sorted(makers)}, got {name!r}")
    return makers[name]()


def copy_curricula(p: dict | Settings) -> Study:
    """Copy at copy_length with each curriculum (and the equal-size causal TF): history with a
    `curriculum` column, models keyed by (curriculum, seed)."""
    s = settings(p)
    task_cfg, model, tcfg = s.copy_task(), s.copy_model(s.copy_length), s.train_config("copy")
    histories, models = [], {}
    for cur in s.curricula:
        h, m = train_sweep(Thinker, [model], Algorithmic(task_cfg, lengths=curriculum(s, cur, s.copy_length)), tcfg,
                           seeds=s.copy_seeds, study=STUDY, columns=lambda c: {"curriculum": cur}, **s.sweep_options())
        histories.append(h)
        models.update({(cur, seed): v for (_, seed), v in m.items()})
    base = equal_size_baseline(task_cfg, next(iter(models.values())).n_params())
    h, m = train_sweep(GPTReader, [base], Algorithmic(task_cfg), tcfg, seeds=s.copy_seeds, study=STUDY,
                       columns=lambda c: {"curriculum": "none (causal TF)"}, **s.sweep_options())
    models.update({("none (causal TF)", seed): v for (_, seed), v in m.items()})
    return Study(Algorithmic(task_cfg), [model, base], pd.concat(histories + [h], ignore_index=True), models, tcfg, s.copy_seeds)


def addition(p: dict | Settings) -> Study:
    """Base-b addition at every width of add_widths, then the equal-size causal TF of the first width."""
    s = settings(p)
    task, configs, tcfg = Algorithmic(s.addition_task()), s.addition_models(), s.train_config("addition")
    hist, models = train_sweep(Thinker, configs, task, tcfg, seeds=s.add_seeds, study=STUDY, **s.sweep_options())
    base = equal_size_baseline(task.cfg, models[configs[0].name, s.add_seeds[0]].n_params())
    base_hist, base_models = train_sweep(GPTReader, [base], task, tcfg, seeds=s.add_seeds, study=STUDY, **s.sweep_options())
    return Study(task, configs + [base], pd.concat([hist, base_hist], ignore_index=True), {**models, **base_models}, tcfg, s.add_seeds)


def compute_randomised(p: dict | Settings) -> tuple[Study, pd.DataFrame]:
    """The compute-randomised model, and its held-out accuracy on the eval_latents x eval_n_steps grid
    (column `trained`: the cell is in the training sets)."""
    s = settings(p)
    model, tcfg = s.rand_model(), s.train_config("compute")
    task = Algorithmic(s.rand_task_config(), lengths=curriculum(s, s.rand_curriculum, s.rand_length),
                       compute=ComputeRandom(s.rand_latents, s.rand_n_steps))
    hist, models = train_sweep(Thinker, [model], task, tcfg, seeds=s.copy_seeds, study=STUDY, **s.sweep_options())
    grid = pd.DataFrame([{"n_latent": m, "n_step": n, "seed": seed, "trained": m in s.rand_latents and n in s.rand_n_steps,
                          **task.evaluate(models[model.name, seed], n_latent=m, n_step=n)}
                         for m in s.eval_latents for n in s.eval_n_steps for seed in s.copy_seeds])
    return Study(task, [model], hist, models, tcfg, s.copy_seeds), grid


def length_generalisation(p: dict | Settings) -> tuple[Study, pd.DataFrame]:
    """Copy trained on kept lengths <= train_max_keep; per kept length k and seed, the token accuracy
    on the k kept positions (the blanked prefix is trivially right, so it is left out)."""
    s = settings(p)
    task = Algorithmic(s.copy_task(), lengths=UniformLength(s.copy_length, min_keep=1, max_keep=s.train_max_keep))
    model, tcfg = s.copy_model(s.copy_length), s.train_config("length")
    hist, models = train_sweep(Thinker, [model], task, tcfg, seeds=s.length_seeds, study=STUDY,
                               columns=lambda c: {"max_keep": s.train_max_keep}, **s.sweep_options())

    @torch.no_grad()
    def kept_accuracy(m, k):
        val = task.at_length(k)
        device = next(m.parameters()).device
        return float((m(val.x.to(device)).argmax(-1).cpu() == val.y)[:, -k:].float().mean())

    by_len = pd.DataFrame([{"kept length": k, "seed": seed, "trained": k <= s.train_max_keep,
                            "kept_token_acc": kept_accuracy(models[model.name, seed], k),
                            **task.evaluate(models[model.name, seed], val=task.at_length(k))}
                           for k in range(1, s.copy_length + 1) for seed in s.length_seeds])
    return Study(task, [model], hist, models, tcfg, s.length_seeds), by_len
