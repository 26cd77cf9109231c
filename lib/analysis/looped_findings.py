"""The five looped notebooks' results tables and findings, as data (lib.analysis.looped.Finding).

One function per notebook takes the study's tidy tables (history, errors or masking) and the
family's settings (anything with `points`, `n_dims`, `steps`: lib.studies.looped.Settings) and
returns `Results`: the tables the notebook shows and its findings. Each finding carries our
classification (`ours`) and, when it judges a claim of the student report
(references/looped_transformers.md §5), the reference-first verdict (`label`, `reason`); the prose
is `render(findings)`:

    res = looped_findings.vs_standard(study.history, errors, settings)
    report.table(res.table)
    looped_findings.render(res.findings)       # a notebook's last line: shown as Markdown

The claims' numbers and words come from lib/analysis/reference.py; the thresholds behind our
classifications from lib/analysis/looped.py. The few helpers that read trained models (the
learnable-lr fold) are here too, beside the findings they feed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.analysis import labels, reference
from lib.analysis import looped as verdicts
from lib.analysis.looped import Finding, Prose, render, sentence
from lib.analysis.stats import compare, seed_interval
from lib.models.looped import Looped
from lib.studies.looped import MASKS, REPORT_FIRST
from lib.train import build

TRANSFORMER = "gpt"  # the body name of the looped transformer the SSM bodies are compared with


@dataclass
class Results:
    """A notebook's results: `tables` (name -> DataFrame, the first is `table`) and its findings."""
    tables: dict[str, pd.DataFrame]
    findings: list[Finding] = field(default_factory=list)

    @property
    def table(self) -> pd.DataFrame:
        return next(iter(self.tables.values()))

    def of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


def tidy(**tables: pd.DataFrame) -> pd.DataFrame:
    """One tidy results table (the report's CSV): the given tables stacked, each row's `table` its name."""
    return pd.concat([df.assign(table=name) for name, df in tables.items()], ignore_index=True)


def family_cost(training: dict, profile: str) -> Prose:
    """What training the whole looped family costs at `profile` (lib.studies.family.training's
    runs, finished, minutes), with the wall time in 2 worker processes on 2 cores."""
    return Prose(f"The whole looped family at profile `{profile}` (these runs and the other looped studies': "
                 f"{training['runs']} runs, {training['finished']} finished): {training['minutes']:.0f} training minutes "
                 f"summed over runs, ≈ {training['minutes'] / 2:.0f} min of wall time in 2 worker processes on 2 cores "
                 "(`python -m lib.studies.family <profile> --workers 2`).")


def _state(stab: pd.DataFrame, history: pd.DataFrame, steps: int) -> list[Finding]:
    """The first findings of every looped notebook: which runs learned, which the step cap stopped while still falling."""
    return [verdicts.learned(stab, steps)] + list(filter(None, [verdicts.unfinished(history)]))


def _compared(claim: str, cmp, expected: str, finished: bool, ref_value: str, metric: str) -> labels.Verdict:
    """The reference's "side a is `expected` ('lower'/'higher') than side b" judged from a stats.compare result."""
    return labels.comparison_verdict(claim, cmp, expected, ref_metric=metric, ref_horizon="", ref_value=ref_value,
                                     finished=finished)


# --- looped_vs_standard: looped vs standard transformers (§5a) ---

def vs_standard(history: pd.DataFrame, errors: pd.DataFrame, settings) -> Results:
    """Table: stability_table at the last position, with the reference's units. Findings: learned,
    still falling; the best looped vs the best standard model (error at b); per looped run, the
    reference's absolute criterion past b (b >= STAYS_FLAT_FROM) and our stability word against
    the reference's (reference.past_b_expected); the convergence target."""
    k = settings.points - 1
    stab = verdicts.stability_table(errors, k=k).assign(**{"ref units at b": lambda d: d["error at b"] / settings.n_dims})
    per_seed = verdicts.stability_seeds(errors, k=k)
    at_b = lambda run: per_seed[per_seed.run == run]["error at b"]
    out = _state(stab, history, settings.steps)
    tf, lp = stab[stab.b == 1], stab[stab.b > 1]
    if len(tf) and len(lp):
        best_l, best_t = lp.sort_values("error at b").iloc[0], tf.sort_values("error at b").iloc[0]
        params = tuple(int(errors[errors.run == r]["params"].iloc[0]) for r in (best_l.run, best_t.run))
        c = compare(at_b(best_l.run), at_b(best_t.run), log=True)
        out.append(Finding("best pair", f"{best_l.run} vs {best_t.run}", c.verdict,
                           facts={"runs": (best_l.run, best_t.run), "params": params, "seeds": int(best_l.seeds), "comparison": c}))
    for _, r in lp.iterrows():
        done = labels.finished(history, [r.run])
        if r.b >= reference.STAYS_FLAT_FROM.value:  # the card's own criterion (absolute, in SE/d²), then our ratio
            v = verdicts.past_b_verdict(per_seed, r.run, settings.n_dims, done)
            low = labels.against((v.ours, *v.interval), reference.PAST_B_STAYS, "below")
            out.append(Finding("past b criterion", r.run, {True: "stays low", False: "rises above", None: "undecided"}[low], v))
        expected = reference.past_b_expected(r.b)
        v = verdicts.word_verdict(f"`{r.run}` past b", r.verdict, expected, int(r.seeds), done, r.ratio, (r["ratio lo"], r["ratio hi"]),
                                  ref_metric="worst error past b / error at b", ref_horizon=f"up to {r['iters max']} iterations")
        out.append(Finding("stability", r.run, r.verdict, v, facts={"iters max": int(r["iters max"])}))
    out.append(verdicts.target(stab, history=history))
    return Results({"stability": stab}, out)


@sentence("best pair")
def _best_pair(f: Finding) -> str:
    (lp, tf), (n_l, n_t), c = f.facts["runs"], f.facts["params"], f.facts["comparison"]
    return (f"- Best looped `{lp}` ({n_l:,} parameters) vs best standard `{tf}` ({n_t:,}, {n_t / n_l:.1f}× the parameters), "
            f"error at b over {f.facts['seeds']} seeds: " + c.sentence(f"`{lp}`", f"`{tf}`") + ".")


@sentence("past b criterion")
def _past_b(f: Finding) -> str:
    return f"- `{f.subject}`, the reference's criterion past b: " + labels.sentence(f.verdict)


@sentence("stability")
def _stability(f: Finding) -> str:
    v = f.verdict
    return (f"- `{f.subject}`: past b it **{f.ours}** (worst up to {f.facts['iters max']} iterations / error at b = "
            f"{v.ours:.3g} [{v.interval[0]:.3g}, {v.interval[1]:.3g}]); the reference: {v.ref_value} → **{v.label}**.")


# --- n_token_masking: masking the recurrent state (§5b) ---

# Our comparison of keeping the first vs the last half of the context, read as the report's "both
# ends matter about equally": not apart counts as equal (no equivalence test); other verdicts decide nothing.
EQUAL_ENDS = {"not apart": True, "lower": False, "higher": False}


def _interval(t: tuple[float, float, float]) -> str:
    return f"{t[0]:.3g} [{t[1]:.3g}, {t[2]:.3g}]"


def masking(history: pd.DataFrame, masked: pd.DataFrame, unmasked: pd.DataFrame, k: int, steps: int) -> Results:
    """`masked`: lib.studies.looped.masking_errors at prompts of `k` pairs; `unmasked`: the error
    table of the same runs without a mask (for learned). Tables: error at b by N and mask ('by N',
    index n_pairs), and per run the unmasked and query-only errors and each curve's shape
    ('shapes'). Findings: learned, still falling; per run the query-only control, each mask side's
    curve shape against the reference's (reference.MASKING_SHAPE); where the report's own mask
    makes the rise and the final drop; keeping the first vs the last half of the context."""
    wheres = [w for w in dict.fromkeys(masked["where"]) if w != "query only"]
    at_b = masked[masked["multiple"] == 1]
    wide = (at_b[at_b["where"] != "query only"].assign(column=lambda d: d["run"] + ", " + d["where"] + "-N")
            .pivot_table(index="n_pairs", columns="column", values="error"))
    control = lambda g: (g[(g["where"] == "last") & (g.n_pairs == k - 1)].groupby("seed")["error"].mean(),
                         g[g["where"] == "query only"].groupby("seed")["error"].mean())  # per seed: nothing masked, the query masked
    rows = []
    for run, g in at_b.groupby("run"):
        full, query = control(g)
        row = {"run": run, "unmasked": seed_interval(full, log=True), "query masked": seed_interval(query, log=True)}
        for where in wheres:
            mean = g[g["where"] == where].groupby("n_pairs")["error"].mean()
            row |= {f"{where}-N {key}": v for key, v in verdicts.curve_shape(mean.index.to_series(), mean).items()}
        rows.append(row)
    shapes = pd.DataFrame(rows)

    stab = verdicts.stability_table(unmasked, k=k - 1)
    learned, n_seeds = stab.set_index("run")["learned"], stab.set_index("run")["seeds"]
    out = _state(stab, history, steps)
    for _, r in shapes.iterrows():
        full, query = control(at_b[at_b.run == r.run])
        c = compare(query, full, log=True)
        out.append(Finding("query control", r.run, c.verdict, facts={"comparison": c}))
        done = labels.finished(history, [r.run])
        for where in wheres:
            shape, side = r[f"{where}-N shape"], where.split(",")[0]
            v = verdicts.word_verdict(f"`{r.run}`'s {where}-N curve", shape if learned[r.run] else "did not learn",
                                      reference.MASKING_SHAPE[side], int(n_seeds[r.run]), done, r[f"{where}-N largest rise"],
                                      ref_metric="shape of the error at b vs N", ref_horizon=f"N up to {k}")
            out.append(Finding("curve shape", r.run, shape, v, facts={
                "where": where, "side": side, **{key: r[f"{where}-N {key}"] for key in ("min error", "N at min", "largest rise", "rise at N")}}))
    if {"first", REPORT_FIRST} <= set(wheres) and len(shapes):
        ours, theirs = shapes["first-N shape"], shapes[f"{REPORT_FIRST}-N shape"]
        if (ours == "monotone").all() and (theirs == "non-monotone").all():
            out.append(Finding("rise from the query", "first-N vs the report's mask", "the report's mask makes the rise"))
    if REPORT_FIRST in wheres:
        for run, g in at_b[at_b["where"] == REPORT_FIRST].groupby("run"):
            before, after = (g[g["n_pairs"] == n]["error"].mean() for n in (k - 1, k))
            out.append(Finding("final drop", run, "the query's own state", facts={"k": k, "before": before, "after": after}))
    if {"first", "last"} <= set(wheres):  # both ends of the context equally important? Keep about half the context pairs.
        n_half = min(at_b.loc[at_b["where"] == "first", "n_pairs"].unique(), key=lambda n: abs(n - (k - 1) / 2))
        for run, g in at_b[at_b["n_pairs"] == n_half].groupby("run"):
            c = compare(*(g[g["where"] == w].groupby("seed")["error"].mean() for w in ("first", "last")), log=True)
            done = labels.finished(history, [run])
            label, reason = labels.derive(EQUAL_ENDS.get(c.verdict), min(c.n_a, c.n_b), done, True, c.verdict)
            v = labels.Verdict(f"`{run}`: the first and the last {n_half} context pairs matter about equally", "error at b",
                               f"{n_half} of {k - 1} context pairs kept", "about equal", c.mean_a, c.ci_a, min(c.n_a, c.n_b),
                               done, True, label, reason)
            out.append(Finding("equal ends", run, c.verdict, v, facts={"kept": n_half, "context": k - 1, "comparison": c}))
    out.append(Finding("not repeated", "masking during training", "not run"))
    shown = shapes.assign(**{c: shapes[c].map(_interval) for c in ("unmasked", "query masked")})
    return Results({"by N": wide, "shapes": shown}, out)


@sentence("query control")
def _query_control(f: Finding) -> str:
    c = f.facts["comparison"]
    return (f"- `{f.subject}`, query-only control: " + c.sentence("masking only the query", "no mask")
            + (": the query's own state carries the computation" if c.verdict == "higher" else "") + ".")


@sentence("curve shape")
def _curve_shape(f: Finding) -> str:
    x, where = f.facts, f.facts["where"]
    return (f"- `{f.subject}`, {where}-N ({MASKS[where]}): **{f.ours}** (minimum {x['min error']:.3g} at N = {x['N at min']}; "
            f"largest later rise ×{x['largest rise']:.2g} at N = {x['rise at N']}); the reference's {x['side']}-N curve is "
            f"{f.verdict.ref_value} → **{f.label}**.")


@sentence("rise from the query")
def _rise(f: Finding) -> str:
    return ("- So the reference's rise of the first-N curve near N = k is reproduced only with its own mask, which "
            "masks the query's state: keeping the query removes it, and the first-N curve falls monotonically.")


@sentence("final drop")
def _final_drop(f: Finding) -> str:
    k, before, after = f.facts["k"], f.facts["before"], f.facts["after"]
    return (f"- `{f.subject}`, the report's mask: at N = {k - 1} it is exactly the query-only control (error {before:.3g}); "
            f"the drop at N = {k} (to {after:.3g}, ×{before / after:.0f}) is the query's own state coming back, "
            "so the report's final drop measures the query, not the context.")


@sentence("equal ends")
def _equal_ends(f: Finding) -> str:
    return (f"- `{f.subject}`, keeping {f.facts['kept']} of the {f.facts['context']} context pairs: "
            + f.facts["comparison"].sentence("keeping the first", "keeping the last")
            + "; the report concluded that both ends matter about equally (not apart is read as equal here: no "
            + f"equivalence test) → **{f.label}**.")


@sentence("not repeated")
def _not_repeated(f: Finding) -> str:
    return "- Not repeated: masking during training (the report saw it converge slowly or not at all)."


# --- looped_n_layers: deeper loop bodies (§5c) ---

def n_layers(history: pd.DataFrame, errors: pd.DataFrame, settings, plateau_level: float) -> Results:
    """Table: stability_table with each run's layers and the mean step at which it left the initial
    plateau (first evaluation below `plateau_level`; blank when a seed never did). Findings:
    learned, still falling; per b, each body's stability word, and the deepest vs the shallowest
    body on the reference's two claims (§5c): more stable past b (a lower ratio), a later end of
    the plateau (a higher step)."""
    k = settings.points - 1
    stab = verdicts.stability_table(errors, k=k).merge(errors[["run", "layers"]].drop_duplicates(), on="run")
    ends = verdicts.plateau_end(history, plateau_level)
    stab["plateau left at step"] = stab["run"].map(lambda r: ends.loc[r].mean() if ends.loc[r].notna().all() else float("nan"))
    per_seed = verdicts.stability_seeds(errors, k=k)
    ratios = lambda run: per_seed[per_seed.run == run]["ratio"]
    done = labels.finished(history)
    out = _state(stab, history, settings.steps)
    for b, g in stab.groupby("b"):
        g = g.sort_values("layers")
        ok = g[g["learned"]]
        out.append(Finding("stability by depth", f"b = {b}", ", ".join(g["verdict"]),
                           facts={"b": b, "bodies": [(r.layers, r.verdict, r.ratio) for _, r in g.iterrows()]}))
        if len(ok) >= 2:
            shallow, deep = ok.iloc[0], ok.iloc[-1]
            c = compare(ratios(deep.run), ratios(shallow.run), log=True)
            v = _compared(f"b = {b}: L = {deep.layers} more stable past b than L = {shallow.layers}", c, "lower", done,
                          "deeper bodies more stable past b", "worst error past b / error at b")
            out.append(Finding("deeper is stabler", f"b = {b}", c.verdict, v, facts={"layers": (deep.layers, shallow.layers), "comparison": c}))
        if len(g) >= 2:  # per-seed steps at which each body left the plateau (NaN: never)
            shallow, deep = g.iloc[0], g.iloc[-1]
            c = compare(ends.loc[deep.run], ends.loc[shallow.run])
            v = _compared(f"b = {b}: L = {deep.layers} leaves the plateau later than L = {shallow.layers}", c, "higher", done,
                          "deeper bodies leave later", f"first step with validation error below {plateau_level}")
            out.append(Finding("deeper leaves later", f"b = {b}", c.verdict, v,
                               facts={"b": b, "level": plateau_level, "layers": (deep.layers, shallow.layers), "comparison": c}))
    return Results({"stability": stab}, out)


@sentence("stability by depth")
def _by_depth(f: Finding) -> str:
    return (f"- b = {f.facts['b']}: stability past b "
            + ", ".join(f"L = {layers}: {word} (ratio {ratio:.3g})" for layers, word, ratio in f.facts["bodies"]) + ".")


@sentence("deeper is stabler")
def _deeper_stabler(f: Finding) -> str:
    (deep, shallow), c = f.facts["layers"], f.facts["comparison"]
    return ("  - " + c.sentence(f"L = {deep}", f"L = {shallow}", lower="more stable")
            + f" — the reference (deeper bodies more stable past b): **{f.label}**.")


@sentence("deeper leaves later")
def _deeper_later(f: Finding) -> str:
    (deep, shallow), c = f.facts["layers"], f.facts["comparison"]
    return (f"- b = {f.facts['b']}: plateau left (first evaluation below {f.facts['level']}): "
            + c.sentence(f"L = {deep}", f"L = {shallow}", lower="earlier")
            + f" (steps) — the reference (deeper bodies leave later): **{f.label}**.")


# --- mamba_vs_looped_tf: looped SSMs vs the looped transformer (§5d) ---

def mamba(history: pd.DataFrame, errors: pd.DataFrame, settings, iters_factor: int) -> Results:
    """Table: stability_table per task kind, run and body, with the reference's units. Findings:
    learned, still falling; per kind and b, each looped SSM vs the looped transformer: stability
    past b (the reference: looped Mamba more stable, a lower ratio) and error at b; not compared
    when either did not learn."""
    k = settings.points - 1
    by = ("kind", "run", "body")
    stab = verdicts.stability_table(errors, k=k, by=by)
    per_seed = verdicts.stability_seeds(errors, k=k, by=by)
    of = lambda r, col: per_seed[(per_seed.kind == r.kind) & (per_seed.run == r.run)][col]
    out = _state(stab, history, settings.steps)
    for (kind, b), g in stab[stab.b > 1].groupby(["kind", "b"]):
        tf = g[g.body == TRANSFORMER]
        if not len(tf):
            continue
        t = tf.iloc[0]
        for _, r in g[g.body != TRANSFORMER].iterrows():
            facts = {"kind": kind, "b": b, "body": r.body, "words": (r.verdict, t.verdict), "factor": iters_factor}
            if not (r.learned and t.learned):
                out.append(Finding("ssm not compared", f"{kind}, b = {b}, {r.body}", "not compared", facts=facts))
                continue
            c = compare(of(r, "ratio"), of(t, "ratio"), log=True)
            v = _compared(f"{kind}, b = {b}: looped {r.body} more stable past b than the looped transformer", c, "lower",
                          labels.finished(history, [r.run, t.run]), "looped Mamba more stable than the looped TF",
                          "worst error past b / error at b")
            at_b = compare(of(r, "error at b"), of(t, "error at b"), log=True)
            out.append(Finding("ssm stability", f"{kind}, b = {b}, {r.body}", c.verdict, v,
                               facts=facts | {"comparison": c, "error at b": at_b}))
    table = stab.assign(**{"ref units at b": lambda d: d["error at b"] / settings.n_dims})
    return Results({"stability": table}, out)


@sentence("ssm not compared")
def _ssm_not_compared(f: Finding) -> str:
    x = f.facts
    return (f"- {x['kind']}, b = {x['b']}: looped {x['body']} ({x['words'][0]}) vs the looped transformer ({x['words'][1]}): "
            "stability not compared.")


@sentence("ssm stability")
def _ssm_stability(f: Finding) -> str:
    x = f.facts
    return (f"- {x['kind']}, b = {x['b']}, stability past b (worst error up to {x['factor']}b / error at b): "
            + x["comparison"].sentence(f"looped {x['body']}", "the looped transformer", lower="more stable")
            + f" — the reference (looped Mamba more stable than the looped TF): **{f.label}**"
            + "; error at b: " + x["error at b"].sentence(f"looped {x['body']}", "the looped transformer") + ".")


# --- learnable_loop_lr: a learnable scale on the injected input (§5e) ---

VARIANT = {"none": "plain", "folded": "folded", "scalar": "lr", "iteration": "lrvec"}  # inject -> the study's name


def variants(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with a `variant` column: the study's name of each row's inject mode (VARIANT)."""
    return df.assign(variant=lambda d: d["inject"].map(VARIANT))


def loop_lr(history: pd.DataFrame, errors: pd.DataFrame, settings, iters_factor: int, gaps: list[float]) -> Results:
    """Table: per b and variant, the error at the last position at b and at iters_factor·b loops
    (geometric mean over seeds, 95 % t-interval). Findings: learned (the one rule, LEARNED),
    still falling; per b, lr vs plain at b loops against the reference's gain of lr (a lower
    error), beside lr vs folded and lrvec vs lr; the fold (`gaps`: the largest gap between each
    lr model and its folded twin, fold_gaps)."""
    k = settings.points - 1
    last = variants(errors[errors["k"] == k])
    rows = []
    for (b, v), g in last.groupby(["b", "variant"]):
        for at, name in ((b, "at b"), (iters_factor * b, f"at {iters_factor}b")):
            per_seed = g[g.iters == at].groupby("seed")["error"].mean()
            m, lo, hi = seed_interval(per_seed, log=True)
            rows.append({"b": b, "variant": v, "iters": name, "error": m, "ci95 lo (seeds)": lo, "ci95 hi (seeds)": hi,
                         "ref units": m / settings.n_dims, "seeds": len(per_seed)})
    summary = pd.DataFrame(rows)
    out = _state(verdicts.stability_table(errors, k=k), history, settings.steps)
    done = labels.finished(history)
    for b in sorted(summary["b"].unique()):
        present = set(summary.loc[(summary["b"] == b), "variant"])
        if not {"lr", "plain"} <= present:
            out.append(Finding("no pair", f"b = {b}", "untested", facts={"b": b}))
            continue
        seed_errors = lambda v: last[(last.b == b) & (last.variant == v) & (last.iters == b)].groupby("seed")["error"].mean()
        gain = compare(seed_errors("lr"), seed_errors("plain"), log=True)
        also = [(a, o, compare(seed_errors(a), seed_errors(o), log=True)) for a, o in (("lr", "folded"), ("lrvec", "lr")) if a in present
                and o in present]
        v = _compared(f"b = {b}: lr below plain at b loops", gain, "lower", done, "lr below plain at b (§5e)", "error at b")
        out.append(Finding("lr gain", f"b = {b}", gain.verdict, v, facts={"b": b, "comparison": gain, "also": also}))
    gap = max(gaps)
    out.append(Finding("fold", "lr vs its folded twin", "exact" if gap < reference.FOLD_EXACT.value else "not exact",
                       facts={"gap": gap}))
    return Results({"errors": summary}, out)


@sentence("no pair")
def _no_pair(f: Finding) -> str:
    return f"- b = {f.facts['b']}: no lr / plain pair in this sweep to compare."


@sentence("lr gain")
def _lr_gain(f: Finding) -> str:
    return (f"- b = {f.facts['b']}, at b loops: " + f.facts["comparison"].sentence("lr", "plain")
            + f" — the reference's gain of lr over plain: **{f.label}**"
            + "".join("; " + c.sentence(a, o) for a, o, c in f.facts["also"]) + ".")


@sentence("fold")
def _fold(f: Finding) -> str:
    if f.ours != "exact":
        return (f"- The fold is not exact after training (max prediction gap {f.facts['gap']:.1e}, at least "
                f"{reference.FOLD_EXACT}): the lr model and its folded twin differ beyond round-off.")
    return (f"- The fold is exact (max prediction gap {f.facts['gap']:.1e}), so the lr model has no extra capacity; a gain of lr over "
            "plain that the folded control shares is an effect of the smaller initial input scale, not of learning s.")


def fold_gap(task, model: Looped, iters: int) -> float:
    """The largest |prediction of `model` - prediction of its folded plain twin| over the task's
    validation prompts at `iters` loops (0 up to round-off: s·E folds into the affine read-in)."""
    return (task.predictions(model, iters=iters) - task.predictions(model.folded(), iters=iters)).abs().max().item()


def fold_gap_at_init(task, configs) -> float:
    """fold_gap of a freshly initialised model of the first config with inject 'scalar', at 2b loops."""
    probe = Looped(next(c for c in configs if c.inject == "scalar")).eval()
    return fold_gap(task, probe, iters=2 * probe.cfg.b)


def fold_gaps(task, study) -> list[float]:
    """fold_gap at b loops of every trained model with inject 'scalar' (each config, each seed)."""
    return [fold_gap(task, study.models[c.name, s], c.b) for c in study.configs if c.inject == "scalar" for s in study.seeds]


def scales(study) -> pd.DataFrame:
    """The learned and the initial scale s (per iteration for 'iteration') of every model with a
    learnable scale, per b and seed (the initial s rebuilt from the run's seed)."""
    s = lambda m: np.round(m.s.detach().cpu().double().numpy(), 3).tolist()
    return pd.DataFrame([{"b": c.b, "seed": seed, "variant": VARIANT[c.inject], "learned s": s(study.models[c.name, seed]),
                          "initial s": s(build(Looped, c, seed))}
                         for c in study.configs if c.inject in ("scalar", "iteration") for seed in study.seeds])
