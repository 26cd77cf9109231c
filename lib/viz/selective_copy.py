"""The selective-copy report's pictures and samples (notebooks/selective_copy.ipynb), each under its stable name."""
from __future__ import annotations

from matplotlib.figure import Figure

from lib.sweep import final_rows
from lib.tasks.selective_copy import decode
from lib.viz import curves, receptive_field, text_grid


def samples(task, n: int = 3) -> str:
    """The first n validation samples as text (target, then the masked input: □ = byte 0), and the set's size."""
    text = "".join(f"{decode(y)!r} \n{decode(x)!r} \n\n" for y, x in zip(task.val.y[:n], task.val.x[:n]))
    return text + (f"sequence length {task.cfg.seq_len} bytes; validation set {task.cfg.val_size} samples (seed {task.cfg.val_seed}), "
                   "excluded from the training stream")


def receptive_fields(specs) -> dict[str, Figure]:
    """One impulse picture per (layers, kernel_size, dilation, cells, from_left) spec, named after it."""
    out = {}
    for layers, ks, dil, cells, left in specs:
        dil_name = "".join(map(str, dil)) if isinstance(dil, list) else dil
        out[f"rf-l{layers}-ks{ks}-dil{dil_name}-s{cells}{'-from-left' if left else ''}"] = receptive_field.plot(ks, dil, layers, cells, left)
    return out


def training(study, seed: int, n: int) -> dict[str, Figure]:
    """Validation error and loss curves of every run, then what the best and the worst configuration
    (by mean final validation loss) write on n validation samples with the weights of `seed`."""
    history = study.history
    out = {"error_curves": curves.plot(history, y="val_error_pct", title="Masked-cell validation error vs training samples"),
           "val_loss_curves": curves.plot(history, y="val_loss", title="Validation loss vs training samples")}
    by_run = final_rows(history).groupby("run")["val_loss"].mean().sort_values()
    for tag, run in (("best", by_run.index[0]), ("worst", by_run.index[-1])):
        batch, pred = study.task.predict(study.models[run, seed], n)
        out[f"validation_{tag}"] = text_grid.plot(batch.y, batch.x, pred, title=f"{tag}: {run} (seed {seed})")
    return out
