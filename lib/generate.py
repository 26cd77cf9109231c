"""Sample text from a trained language model: greedy, top-k or top-p (nucleus).

    python -m lib.generate --checkpoint checkpoints/small_lms/<run>.pt --prompt "Once upon a time"
        [--method greedy|top_k|top_p] [--top-k 40] [--top-p 0.9] [--temperature 1.0]
        [--max-new-tokens 120] [--seed 0] [--no-cache]

The checkpoint (written by lib.train) holds the model's class and config and the task's
tokenizer, so nothing else is needed. With the cache (default) each new token costs one
`LanguageModel.step`: the transformer's KV cache, the SSD's recurrent state, the mixer's window;
--no-cache runs the whole sequence forward for every token (the reference for the tests).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

from lib.config import OneLineParser

METHODS = ("greedy", "top_k", "top_p")


def pick_next(logits: torch.Tensor, method: str = "greedy", *, top_k: int = 40, top_p: float = 0.9,
              temperature: float = 1.0, gen: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) -> next token ids (B,)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if method == "greedy":
        return logits.argmax(-1)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature}")
    logits = logits.float() / temperature
    if method == "top_k":
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    else:  # keep the smallest set of most likely tokens whose probability reaches top_p
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # mass before this token already reaches top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)


@torch.no_grad()
def generate(model, prompt: list[int], max_new_tokens: int, *, method: str = "greedy", top_k: int = 40, top_p: float = 0.9,
             temperature: float = 1.0, seed: int = 0, cache: bool = True, eos_id: int | None = None) -> list[int]:
    """The prompt's continuation (new token ids only), stopping early at eos_id."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    ctx = model.cfg.ctx
    seq = torch.tensor([prompt[-ctx:]], device=device)
    out: list[int] = []
    state, new = None, seq
    try:
        for _ in range(max_new_tokens):
            if cache:
                room = model.room(state)
                if room is not None and room < new.shape[1]:  # positions used up: re-read the recent half
                    state, new = None, seq[:, -(ctx // 2):]
                logits, state = model.step(new, state)
            else:
                logits = model(seq[:, -ctx:])[:, -1]
            nxt = pick_next(logits, method, top_k=top_k, top_p=top_p, temperature=temperature, gen=gen)
            out.append(int(nxt))
            if eos_id is not None and out[-1] == eos_id:
                break
            new = nxt[:, None]
            seq = torch.cat([seq, new], dim=1)
    finally:
        model.train(was_training)
    return out


def _import(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def load(checkpoint: str | Path, device: str = "cpu"):
    """(model, tokenizer) from a checkpoint written by lib.train for a language-modelling task.

    Loaded with weights_only=True (lib.train.load_checkpoint): a checkpoint holds tensors, plain
    containers and strings only, so a file from an untrusted source cannot run code. The model
    class must be one of this package's (lib.models.*)."""
    from lib.data.tokenizers import tokenizer_from_json
    from lib.train import load_checkpoint

    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    saved = load_checkpoint(path, map_location=device)
    meta = saved.get("task_meta") or {}
    if "tokenizer" not in meta or not saved.get("model_class"):
        raise ValueError(f"{path} is not a language-model checkpoint (no tokenizer or model class saved in it)")
    if not all(str(saved.get(k, "")).startswith("lib.models.") for k in ("model_class", "model_config_class")):
        raise ValueError(f"{path}: model class {saved.get('model_class')!r} is not one of lib.models; refusing to import it")
    cfg = _import(saved["model_config_class"]).load(saved["config"]["model"])
    model = _import(saved["model_class"])(cfg)
    model.load_state_dict(saved["model"])
    return model.to(device).eval(), tokenizer_from_json(meta["tokenizer"])


def _positive_int(name: str):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {v}")
        return v
    return parse


def _float_in(name: str, lo: float, hi: float):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not lo < v <= hi:  # also false for NaN
            raise argparse.ArgumentTypeError(f"{name} must be in ({lo}, {hi}], got {v}")
        return v
    return parse


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m lib.generate", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, nargs="+", help="a checkpoint; given several (a glob), the newest is used")
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("--method", choices=METHODS, default="top_p")
    ap.add_argument("--top-k", type=_positive_int("--top-k"), default=40)
    ap.add_argument("--top-p", type=_float_in("--top-p", 0.0, 1.0), default=0.9)
    ap.add_argument("--temperature", type=_float_in("--temperature", 0.0, float("inf")), default=1.0)
    ap.add_argument("--max-new-tokens", type=_positive_int("--max-new-tokens"), default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)  # a bad option: argparse prints one usage line and the error, exit 2
    if not args.prompt:
        print("error: --prompt must not be empty (the model needs at least one token to continue)", file=sys.stderr)
        return 2
    path = max(args.checkpoint, key=lambda p: Path(p).stat().st_mtime if Path(p).exists() else -1)
    if len(args.checkpoint) > 1:
        print(f"using the newest of {len(args.checkpoint)} checkpoints: {path}", file=sys.stderr)
    from lib.train import CheckpointError

    try:
        model, tok = load(path)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    ids = generate(model, tok.encode(args.prompt), args.max_new_tokens, method=args.method, top_k=args.top_k, top_p=args.top_p,
                   temperature=args.temperature, seed=args.seed, cache=not args.no_cache, eos_id=tok.eos_id)
    print(args.prompt + tok.decode(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
