"""The small language models' wiring (notebooks/small_lms.ipynb): one task (corpus, tokenizer,
windows), every model entry with the same wall-clock budget; its results and findings are
lib/analysis/lm.py's.

    task = lm.make_task(globals())      # the notebook's parameters, read as lm.Settings
    study = lm.train(globals(), task)   # history with tokens and tokens_per_s columns
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pandas as pd

from lib import progress
from lib.device import check_compile_key
from lib.models.lm import LanguageModel, LMConfig
from lib.studies import Study, StudySettings, check_seed_list, eval_every, from_namespace
from lib.sweep import train_missing, train_sweep
from lib.tasks.lm import LMTask, TextConfig
from lib.train import TrainConfig

STUDY = "small_lms"


@dataclass(frozen=True)
class Settings(StudySettings):
    """The small_lms notebook's parameters (its `parameters` cell holds its defaults)."""

    # data
    corpus: str = "stories"  # stories (offline generator) | tinystories
    tinystories_path: str = ""  # a local TinyStories .txt or .jsonl file; empty: HF datasets
    n_docs: int = 1500
    tokenizer: str = "bpe"  # bpe | bytes
    vocab: int = 4096  # BPE vocabulary (an upper bound)
    ctx: int = 64
    val_windows: int = 16
    # models: one entry per model, LMConfig keys (vocab and ctx come from above), plus an optional own `steps` cap
    models: list[dict] = field(default_factory=lambda: [{"arch": "gpt", "d_model": 64, "n_layer": 2, "n_head": 4}])
    seeds: list[int] = field(default_factory=lambda: [0])
    # training: each run stops at its `steps` or after `max_minutes` of training, whichever first
    max_minutes: float | None = None
    steps: int = 60
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 0.1
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1
    grad_clip: float | None = 1.0
    evals: int = 4
    compile: str | bool = "auto"
    # memory against context; samples
    memory_contexts: list[int] = field(default_factory=lambda: [64, 128, 256])
    prompt: str = "Once upon a time"
    sample_tokens: int = 40

    def __post_init__(self):
        super().__post_init__()
        self.text_config()  # validates the corpus, tokenizer and sizes
        if not self.models:
            raise ValueError("models is empty; give at least one")
        if bad := [m for m in self.models if "steps" in m and (not isinstance(m["steps"], int) or m["steps"] < 1)]:
            raise ValueError(f"models: a model's own steps must be an int >= 1, got {bad[0]}")
        names = [c.name for c in self.model_configs(self.vocab)]  # validates every entry (arch, sizes)
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"models: {dup} named twice; give each model once")
        check_seed_list(self.seeds, "seeds")
        for key in ("evals", "sample_tokens"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} = {getattr(self, key)}; must be >= 1")
        if not self.memory_contexts or min(self.memory_contexts) < 1:
            raise ValueError(f"memory_contexts = {self.memory_contexts}; give at least one, each >= 1")
        if not self.prompt:
            raise ValueError("prompt is empty; the samples need at least one character to start from")
        check_compile_key(self.compile)
        for name in names:
            self.train_config(name)  # validates the training keys

    def text_config(self) -> TextConfig:
        return TextConfig(corpus=self.corpus, path=self.tinystories_path, n_docs=self.n_docs, tokenizer=self.tokenizer,
                          vocab=self.vocab, ctx=self.ctx, val_windows=self.val_windows)

    def model_configs(self, vocab: int) -> list[LMConfig]:
        """One LMConfig per entry of `models`, at the tokenizer's vocabulary size."""
        return LMConfig.sweep([{k: v for k, v in m.items() if k != "steps"} for m in self.models], vocab=vocab, ctx=self.ctx)

    def train_config(self, run: str | None = None) -> TrainConfig:
        """A model's TrainConfig (seed 0): its entry's own `steps` cap, else `steps`. Every run has the
        same wall-clock budget `max_minutes` when set, so equal compute holds by construction."""
        caps = {c.name: m.get("steps", self.steps) for c, m in zip(self.model_configs(self.vocab), self.models)}
        if run is not None and run not in caps:
            raise ValueError(f"run = {run!r} is not a model of this study; its models: {sorted(caps)}")
        n = caps.get(run, self.steps)
        return TrainConfig(steps=n, batch_size=self.batch_size, lr=self.lr, weight_decay=self.weight_decay, warmup_steps=self.warmup_steps,
                           min_lr_ratio=self.min_lr_ratio, grad_clip=self.grad_clip, eval_every=eval_every(n, self.evals),
                           max_minutes=self.max_minutes, device=self.device, compile=self.compile)

    def dry_changes(self) -> dict:
        return {**super().dry_changes(), "n_docs": min(self.n_docs, 300), "val_windows": min(self.val_windows, 2),
                "sample_tokens": min(self.sample_tokens, 8), "memory_contexts": self.memory_contexts[:1],
                "batch_size": min(self.batch_size, 4), "warmup_steps": 0, "steps": min(self.steps, 2), "evals": 1,
                "seeds": self.seeds[:1], "models": [{**m, "steps": 2} if "steps" in m else m for m in self.models[:2]]}


def settings(p: dict | Settings) -> Settings:
    """The study's settings from a notebook's namespace or a profile's parameters (or as given)."""
    return p if isinstance(p, Settings) else from_namespace(Settings, p)


def make_task(p: dict | Settings) -> LMTask:
    return LMTask(settings(p).text_config())


def runs(p: dict | Settings, task: LMTask) -> list[tuple[LMConfig, TrainConfig]]:
    """(model config, its TrainConfig) per entry of `models`, at the task's vocabulary size."""
    s = settings(p)
    return [(c, s.train_config(c.name)) for c in s.model_configs(task.vocab_size)]


def train(p: dict | Settings, task: LMTask) -> Study:
    """Every model entry on `task`, each with its seeds; the missing runs train side by side (the
    settings' sweep backend: worker processes on a CPU, or Ray tasks), then every run is loaded."""
    s = settings(p)
    plan = runs(s, task)
    todo = [(c, task, dataclasses.replace(t, seed=seed)) for c, t in plan for seed in s.seeds]
    train_missing(LanguageModel, todo, STUDY, cost=lambda c: -c.n_layer, **s.sweep_options())  # equal budgets: any order
    histories, models = [], {}
    with progress.Runs(len(todo)):  # one count of runs, with one ETA, over every model entry
        for c, tcfg in plan:
            h, t = train_sweep(LanguageModel, [c], task, tcfg, seeds=s.seeds, study=STUDY,
                               columns=lambda c: {"arch": c.arch, "layers": c.n_layer, "d_model": c.d_model})
            histories.append(h)
            models.update(t)
    history = pd.concat(histories, ignore_index=True)
    history["tokens"] = history["samples"] * s.ctx
    history["tokens_per_s"] = history["samples_per_s"] * s.ctx
    if task.floor_bpc is not None:
        history["excess_bpc"] = history["val_bpc"] - task.floor_bpc
    return Study(task, [c for c, _ in plan], history, models, None, list(s.seeds))

