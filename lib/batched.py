"""Seeds (and lrs) of one configuration trained as one batched model.

A 50k-parameter model leaves most of a GPU idle; S of them stacked into one model keep it busy.
The members are S runs of one model config on one task whose TrainConfigs differ in seed and lr
(and may differ in any other per-run scalar: schedule, clipping, cap, stopping rule). Glossary:
S members, s one of them, W a parameter.

    W          (S, ...)  every parameter and buffer stacked over the members (stack_module_state)
    loss_s     task.loss(model at W[s], batch_s)     vmap over s (functional_call); a loop over s where the
                                                     model cannot be vmapped (e.g. an autograd.Function
                                                     without setup_context), or the batches differ in shape
    g_s        d loss_s / d W[s]                     one backward of sum_s loss_s: members never mix
    clip       g_s *= min(1, c_s / (|g_s| + 1e-6))   |g_s| member s's global norm, as clip_grad_norm_
    AdamW      torch's update (decoupled decay), with lr_at(step_s, cfg_s) and betas per member

Everything else is each member's own and comes from lib.train: its generator, seeded as train()
seeds it (so member s draws the batches its separate run draws), its RunState and RunInfo, resume,
lr_at (any schedule, a wsd decay per member), eval_due, validation_metrics, evaluation_row,
stop_decision, check_finite, save_checkpoint (same path, layout and run id), finish. A member that
stops is frozen (its checkpoint is final) and the others go on without it. A checkpoint written
here resumes in train() and one written by train() resumes here. Results equal separate runs up
to float rounding (tests/test_batched.py).

A member's train_minutes is its share of the group's training time (the time between evaluations
divided by the members then training), so the members' minutes sum to the group's wall time.

Not batched: a task that hears each batch (after_step: a curriculum whose state depends on the
losses), fp16 (its loss scaler) and compile; `batch_seeds` (TrainConfig, recorded only) chooses:
auto = on CUDA unless compile is asked for, off on a CPU, where it does not pay
(benchmarks/results/batched_seeds_cpu.md).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn as nn
from torch.func import functional_call, stack_module_state, vmap

from lib import device as devices
from lib import provenance
from lib.paths import git_revision
from lib.progress import bar
from lib.train import (RunInfo, RunState, TrainConfig, _autocast, check_finite, counting_flops, eval_due, evaluation_row,
                       finish, lr_at, resume, run_id, save_checkpoint, stop_decision, to_device, total_steps,
                       validation_metrics)


def enabled(cfg: TrainConfig) -> bool:
    """batch_seeds resolved on cfg's device: true or false as given; auto: on CUDA unless compile is
    asked for explicitly (the batched model is not compiled)."""
    want = str(cfg.batch_seeds).lower()
    if want == "auto":
        return devices.pick(cfg.device).type == "cuda" and devices.check_compile_key(cfg.compile) != "true"
    return want == "true"


def can_batch(task: Any) -> bool:
    """A task whose batches do not depend on the losses so far (no after_step curriculum)."""
    return not hasattr(task, "after_step")


def group_key(mcfg: Any, task: Any, cfg: TrainConfig) -> str:
    """Runs with equal keys train as one batched model: one model config, one task, one set of
    training settings but for seed and lr."""
    return f"{type(task).__qualname__}-{run_id(mcfg, dataclasses.replace(cfg, seed=0, lr=1.0), *task.spec)}"


@dataclass
class Member:
    """One run of the group: what train() would hold for it."""

    model: nn.Module
    task: Any
    cfg: TrainConfig
    info: RunInfo
    extra: dict
    opt: torch.optim.AdamW  # the run's own optimizer: its state_dict is the checkpoint's (never stepped here)
    gen: torch.Generator
    state: RunState = None
    step_at_start: int = 0
    adam_step: int = 0
    n_loss: int = 0  # steps summed into the loss since the last evaluation
    since: int = 1  # the first of them


class _LossOf(nn.Module):
    """task.loss(model, batch) as a module, so functional_call swaps the model's weights for one
    member's (or, under vmap, every member's) in whatever methods the loss calls."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, task: Any, batch: Any) -> torch.Tensor:
        out = task.loss(self.model, batch)
        return out[0] if isinstance(out, tuple) else out


def _rebuild(like: tuple, fields: list) -> tuple:
    return type(like)(*fields) if hasattr(like, "_fields") else tuple(fields)


class _Stack:
    """The training members' parameters, buffers and AdamW moments, stacked over members (dim 0)."""

    def __init__(self, members: list[Member]):
        self.members = members
        self.params, self.buffers = stack_module_state([m.model for m in members])  # params: leaves with grad
        self.loss = _LossOf(members[0].model)  # the template whose weights functional_call swaps
        moments = {}
        for m in members:
            for name, p in m.model.named_parameters():
                st = m.opt.state.get(p, {})
                moments.setdefault(name, []).append((st.get("exp_avg", torch.zeros_like(p)), st.get("exp_avg_sq", torch.zeros_like(p))))
            first = next(iter(m.model.parameters()))
            m.adam_step = int(m.opt.state[first]["step"]) if first in m.opt.state else 0
        self.exp_avg = {k: torch.stack([a for a, _ in v]) for k, v in moments.items()}
        self.exp_avg_sq = {k: torch.stack([b for _, b in v]) for k, v in moments.items()}
        self.loss_sum = torch.zeros(len(members), device=next(iter(self.params.values())).device)
        self.vmapped = True  # until the model turns out not to be vmappable

    def _weights(self, i: int | None = None) -> tuple[dict, dict]:
        pick = (lambda t: t) if i is None else (lambda t: t[i])
        return ({f"model.{k}": pick(v) for k, v in self.params.items()}, {f"model.{k}": pick(v) for k, v in self.buffers.items()})

    def _vmapped_losses(self, batches: list) -> torch.Tensor | None:
        """(S,) losses by one vmapped call, or None when the batches cannot be stacked (shapes or
        non-tensor fields differ)."""
        first = batches[0]
        tensor = [isinstance(f, torch.Tensor) for f in first]
        for b in batches[1:]:
            for f0, f, t in zip(first, b, tensor):
                if (f.shape != f0.shape) if t else (f != f0):
                    return None
        stacked = tuple(torch.stack([b[j] for b in batches]) for j, t in enumerate(tensor) if t)
        task = self.members[0].task

        def one(params, buffers, *fields):
            it = iter(fields)
            batch = _rebuild(first, [next(it) if t else f for f, t in zip(first, tensor)])
            return functional_call(self.loss, (params, buffers), (task, batch))

        return vmap(one)(*self._weights(), *stacked)

    def losses(self, batches: list) -> torch.Tensor:
        """(S,) each member's loss on its own batch; the backward of their sum puts each member's
        gradient into its own slice of the stacked grads."""
        if self.vmapped:
            try:
                losses = self._vmapped_losses(batches)
                if losses is not None:
                    return losses
            except (RuntimeError, NotImplementedError) as e:  # no batching rule (e.g. an autograd.Function without setup_context)
                self.vmapped = False
                print(f"{self.members[0].info.desc}: this model cannot be vmapped ({str(e).strip().splitlines()[0][:100]}); "
                      "a loop over the members computes the losses")
        return torch.stack([functional_call(self.loss, self._weights(i), (m.task, b))
                            for i, (m, b) in enumerate(zip(self.members, batches))])

    def count_flops(self, i: int, batch: Any, state: RunState, amp: Any) -> None:
        """state.flops_per_step as train() counts it: one forward and backward of member i alone on
        its batch (on copies of its weights, so no gradient lands in the stack; its generator is untouched)."""
        weights = {k: v.detach()[i].clone().requires_grad_(v.requires_grad) for k, v in self._weights()[0].items()}
        with counting_flops(state):
            with amp:
                loss = functional_call(self.loss, (weights, self._weights(i)[1]), (self.members[i].task, batch))
            loss.backward()

    def _vector(self, values: list[float], like: torch.Tensor) -> torch.Tensor:
        """Per-member scalars as a (S, 1, ...) tensor that broadcasts over `like`'s member slices."""
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(-1, *[1] * (like.dim() - 1))

    @torch.no_grad()
    def clip(self) -> None:
        """clip_grad_norm_ per member: each member's grads scaled to its own grad_clip by its own global norm."""
        limits = [m.cfg.grad_clip if m.cfg.grad_clip is not None else float("inf") for m in self.members]
        if all(c == float("inf") for c in limits):
            return
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)  # (S, parameters)
        total = torch.linalg.vector_norm(norms, dim=1)  # (S,)
        coef = (torch.tensor(limits, dtype=total.dtype, device=total.device) / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.view(-1, *[1] * (g.dim() - 1)))

    @torch.no_grad()
    def adamw(self) -> None:
        """One torch.optim.AdamW step (its single-tensor algorithm, in its order of operations) for
        every member at once, each with its own lr, betas, weight decay and step count."""
        ms = self.members
        for m in ms:
            m.adam_step += 1
        groups = [m.opt.param_groups[0] for m in ms]
        lr = [lr_at(m.state.step, m.cfg, m.state.decay_start) for m in ms]
        beta1, beta2 = [g["betas"][0] for g in groups], [g["betas"][1] for g in groups]
        decay = [1 - a * g["weight_decay"] for a, g in zip(lr, groups)]
        neg_step_size = [-(a / (1 - b1 ** m.adam_step)) for a, b1, m in zip(lr, beta1, ms)]
        bias2_sqrt = [(1 - b2 ** m.adam_step) ** 0.5 for b2, m in zip(beta2, ms)]
        eps = groups[0]["eps"]
        for name, p in self.params.items():
            if p.grad is None:
                continue
            g, exp_avg, exp_avg_sq = p.grad, self.exp_avg[name], self.exp_avg_sq[name]
            vec = lambda v: self._vector(v, p)
            p.mul_(vec(decay))
            exp_avg.lerp_(g, vec([1 - b for b in beta1]))
            exp_avg_sq.mul_(vec(beta2)).addcmul_(g * vec([1 - b for b in beta2]), g)
            denom = (exp_avg_sq.sqrt() / vec(bias2_sqrt)).add_(eps)
            p.addcdiv_(exp_avg * vec(neg_step_size), denom)
            p.grad = None

    @torch.no_grad()
    def write_back(self, i: int) -> None:
        """Member i's weights into its model and its moments into its optimizer, as train() leaves
        them after a step (the optimizer's lr is the last step's): ready to evaluate and checkpoint."""
        m = self.members[i]
        for name, p in m.model.named_parameters():
            p.copy_(self.params[name][i])
            m.opt.state[p] = {"step": torch.tensor(float(m.adam_step), dtype=torch.float32),
                              "exp_avg": self.exp_avg[name][i].clone(), "exp_avg_sq": self.exp_avg_sq[name][i].clone()}
        for name, b in m.model.named_buffers():
            b.copy_(self.buffers[name][i])
        for group in m.opt.param_groups:
            group["lr"] = lr_at(max(m.state.step - 1, 0), m.cfg, m.state.decay_start)

    def keep(self, rows: list[int]) -> None:
        """Go on with these members only (the others stopped)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.loss_sum.device)
        self.members = [self.members[r] for r in rows]
        self.params = {k: v.detach()[index].requires_grad_() for k, v in self.params.items()}
        self.buffers = {k: v[index] for k, v in self.buffers.items()}
        self.exp_avg = {k: v[index] for k, v in self.exp_avg.items()}
        self.exp_avg_sq = {k: v[index] for k, v in self.exp_avg_sq.items()}
        self.loss_sum = self.loss_sum[index]
        self.loss.model = self.members[0].model if self.members else self.loss.model


def check_group(models: list[nn.Module], tasks: list, cfgs: list[TrainConfig]) -> None:
    """One-line errors for members that cannot train as one batched model."""
    if not (len(models) == len(tasks) == len(cfgs)) or not models:
        raise ValueError(f"need one task and one TrainConfig per model, got {len(models)} models, {len(tasks)} tasks, {len(cfgs)} configs")
    shapes = [[(k, tuple(p.shape)) for k, p in m.named_parameters()] for m in models]
    if any(type(m) is not type(models[0]) for m in models) or any(s != shapes[0] for s in shapes):
        raise ValueError("batched members must be one model class with the same parameter names and shapes (one model config)")
    for key in ("batch_size", "device", "amp", "compile"):
        values = {getattr(c, key) for c in cfgs}
        if len(values) > 1:
            raise ValueError(f"batched members must share {key}; got {sorted(map(str, values))}")
    if not all(can_batch(t) for t in tasks):
        raise ValueError(f"task {type(tasks[0]).__name__} has after_step (a curriculum that hears each batch): set batch_seeds: false")
    if devices.check_compile_key(cfgs[0].compile) == "true":
        raise ValueError("compile: true cannot be used with batch_seeds (the batched model is not compiled); "
                         "set compile: auto or false, or batch_seeds: false")


def train_batched(
    models: list[nn.Module],
    tasks: list,
    cfgs: list[TrainConfig],
    *,
    checkpoints: list[Path | None] | None = None,
    descs: list[str] | None = None,
    extras: list[dict] | None = None,
) -> list[pd.DataFrame]:
    """Train models[s] on tasks[s] with cfgs[s] for every member s, as one batched model; return
    each member's history, exactly as lib.train.train returns it. Each task must be the member's own
    object (a task may keep state). A member whose checkpoint exists resumes from it (a finished
    one returns its history at once)."""
    check_group(models, tasks, cfgs)
    n = len(models)
    checkpoints, descs, extras = checkpoints or [None] * n, descs or [""] * n, extras or [{}] * n
    paths = [str(p) for p in checkpoints if p is not None]
    if len(set(paths)) < len(paths):
        raise ValueError("batched members must have distinct checkpoints; two share one")
    device = devices.pick(cfgs[0].device)
    precision = devices.resolve_precision(cfgs[0].amp, device)
    if precision == "fp16":
        raise ValueError("amp: fp16 cannot be used with batch_seeds (one loss scaler per member); use bf16 or off, or batch_seeds: false")
    revision = git_revision()
    members = []
    for model, task, cfg, path, desc, extra in zip(models, tasks, cfgs, checkpoints, descs, extras):
        info = RunInfo(desc, Path(path) if path is not None else None, revision,
                       provenance.dependencies(type(model).__module__, type(task).__module__), device, precision, False)
        model.to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay)
        gen = torch.Generator(device=device).manual_seed(cfg.seed)  # as train() seeds the run's stream
        m = Member(model, task, cfg, info, extra, opt, gen)
        m.state = resume(model, opt, gen, task, cfg, info)
        m.step_at_start = m.state.step
        members.append(m)
    training = [m for m in members if not m.state.done(m.cfg)]
    if training:
        _train(training, device, precision)
    return [finish(m.state, m.info, m.extra, trained_steps=m.state.step - m.step_at_start) for m in members]


def _train(members: list[Member], device: torch.device, precision: str) -> None:
    amp = _autocast(device, precision)

    def evaluate(i: int, m: Member) -> None:
        evaluation_row(m.state, m.cfg, m.info, validation_metrics(m.model, m.model, m.task, m.cfg, amp), stack.loss_sum[i], m.n_loss)

    stack = _Stack(members)
    for i, m in enumerate(members):
        m.model.train()
        if m.state.step == 0:
            evaluate(i, m)
        m.since = m.state.step + 1
    batch_size = members[0].cfg.batch_size
    pbar = bar(max(total_steps(m.cfg) for m in members), desc=f"{len(members)} runs batched: {members[0].info.desc}",
               initial=min(m.state.step for m in members))
    t0 = time.perf_counter()
    try:
        while stack.members:
            ms = stack.members
            batches = [to_device(m.task.train_batch(batch_size, m.gen, m.state.step), device) for m in ms]
            uncounted = [i for i, m in enumerate(ms) if m.state.flops_per_step is None]
            if uncounted:  # the members' first step (one model config: one count for all)
                stack.count_flops(uncounted[0], batches[uncounted[0]], ms[uncounted[0]].state, amp)
                for i in uncounted[1:]:
                    ms[i].state.flops_per_step = ms[uncounted[0]].state.flops_per_step
            with amp:
                losses = stack.losses(batches)
            losses.sum().backward()
            stack.clip()
            stack.adamw()
            stack.loss_sum += losses.detach().float()  # stays on the device
            share = (time.perf_counter() - t0) / len(ms)  # each member's share of the time since the last evaluation
            due = []
            for i, m in enumerate(ms):
                m.state.step += 1
                m.n_loss += 1
                if m.cfg.finite_every and m.state.step % m.cfg.finite_every == 0:
                    check_finite(stack.loss_sum[i], m.since, m.state, m.cfg, m.info.desc)
                if m.cfg.snapshot_every and m.state.step % m.cfg.snapshot_every == 0:
                    stack.write_back(i)
                    m.state.snapshots.append({k: v.detach().cpu().clone() for k, v in m.model.state_dict().items()})
                if eval_due(m.state, m.cfg, seconds=m.state.train_seconds + share):
                    due.append(i)
            pbar.update(1)
            if not due:
                continue
            for i in due:  # always before a checkpoint; it waits on the device, so the clock reads after it
                check_finite(stack.loss_sum[i], ms[i].since, ms[i].state, ms[i].cfg, ms[i].info.desc)
            share = (time.perf_counter() - t0) / len(ms)
            for m in ms:
                m.state.train_seconds += share
            for i in due:
                m = ms[i]
                stack.write_back(i)
                evaluate(i, m)  # the one read of the member's summed loss
                stack.loss_sum[i] = 0.0
                m.n_loss, m.since = 0, m.state.step + 1
                m.state.stop_reason = stop_decision(m.state, m.cfg)
                if m.info.checkpoint is not None:
                    save_checkpoint(m.info.checkpoint, m.state, m.cfg, m.info, m.model, m.opt, m.gen, m.task)
            if any(m.state.stop_reason is not None for m in ms):
                stack.keep([i for i, m in enumerate(ms) if m.state.stop_reason is None])
            t0 = time.perf_counter()
    finally:
        pbar.close()
