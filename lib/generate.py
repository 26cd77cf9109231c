"""Sample text from a trained language model: greedy, top-k or top-p (nucleus).

    python -m lib.generate --study small_lms --run gpt [--seed 0] --prompt "Once upon a time"
    python -m lib.generate --checkpoint checkpoints/small_lms/<run>.pt --prompt "Once upon a time"
        [--method greedy|top_k|top_p] [--top-k 40] [--top-p 0.9] [--temperature 1.0]
        [--max-new-tokens 120] [--seed 0] [--no-cache]

--study/--run find a run's checkpoint in the checkpoint folder (SEQLAB_CHECKPOINTS, else
checkpoints/ in the checkout): --run is a run name or its leading part ('gpt' for 'gpt-d64-L2-h4'),
--seed the run's seed (default: its lowest); of several matching runs or trainings (other profiles)
the most recently written is used. --seed also seeds the sampling. The checkpoint (written by
lib.train) holds the model's config and the task's tokenizer; the model class comes from MODELS,
this module's registry, never from the file. With the cache (default) each new token costs one
`LanguageModel.step`: the transformer's KV cache, the SSD's recurrent state, the mixer's window;
--no-cache runs the whole sequence forward for every token (the reference for the tests). The
text is printed as it is generated.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Iterator

import torch

from lib import paths, provenance
from lib.config import ConfigError, OneLineParser
from lib.data.tokenizers import tokenizer_from_json
from lib.models.lm import LanguageModel, LMConfig
from lib.train import CheckpointError, load_checkpoint

METHODS = ("greedy", "top_k", "top_p")
# The models generate can rebuild, under the name lib.train stores (module:class). The class and its
# config class come from here, never from the checkpoint; every architecture of lib.models.lm.ARCHS
# is a LanguageModel.
MODELS = {f"{LanguageModel.__module__}:{LanguageModel.__qualname__}": (LanguageModel, LMConfig)}
MAX_NEW_TOKENS = 10_000  # the output is streamed, but a larger count is a typo rather than a request
TEMPERATURE_RANGE = (1e-3, 1e3)  # below, use --method greedy (float32 logits overflow); above, uniform noise
TOP_P_MIN = 1e-6  # below, float32 rounds the nucleus' mass to zero
TOP_K_MAX = 1 << 20  # more than any vocabulary here
SEED_MAX = 2**63 - 1  # torch.Generator.manual_seed's range
RUN_FILE = re.compile(r"^(?P<run>.+)-s(?P<seed>\d+)-(?P<hash>[0-9a-f]{10})\.pt$")  # lib.sweep.checkpoint_for's names
HOLD_BACK = 8  # tokens a streamed character may span (a UTF-8 character cut between byte tokens)


def pick_next(logits: torch.Tensor, method: str = "greedy", *, top_k: int = 40, top_p: float = 0.9,
              temperature: float = 1.0, gen: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) -> next token ids (B,)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    if method == "greedy":
        return logits.argmax(-1)
    if not TEMPERATURE_RANGE[0] <= temperature <= TEMPERATURE_RANGE[1]:
        raise ValueError(f"temperature must be in [{TEMPERATURE_RANGE[0]}, {TEMPERATURE_RANGE[1]}] for sampling, got {temperature}")
    if method == "top_p" and not TOP_P_MIN <= top_p <= 1:
        raise ValueError(f"top_p must be in [{TOP_P_MIN}, 1], got {top_p}")
    logits = logits.float()
    logits = (logits - logits.max(-1, keepdim=True).values) / temperature  # the best token at 0: no overflow
    if method == "top_k":
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    else:  # keep the smallest set of most likely tokens whose probability reaches top_p
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p  # mass before this token already reaches top_p
        drop[..., 0] = False  # the most likely token always stays
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    return torch.multinomial(probs.cpu(), 1, generator=gen).squeeze(-1).to(logits.device)


def stream(model, prompt: list[int], max_new_tokens: int, *, method: str = "greedy", top_k: int = 40, top_p: float = 0.9,
           temperature: float = 1.0, seed: int = 0, cache: bool = True, eos_id: int | None = None) -> Iterator[int]:
    """The prompt's continuation, one new token id at a time as it is generated; stops at eos_id."""
    if not prompt:
        raise ValueError("the prompt must hold at least one token")
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise ValueError(f"max_new_tokens must be in [1, {MAX_NEW_TOKENS}], got {max_new_tokens}")
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must be in [0, {SEED_MAX}], got {seed}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    ctx = model.cfg.ctx
    seq = torch.tensor([prompt[-ctx:]], device=device)
    state, new = None, seq
    try:
        for _ in range(max_new_tokens):
            with torch.no_grad():
                if cache:
                    room = model.room(state)
                    if room is not None and room < new.shape[1]:  # positions used up: re-read the recent half
                        state, new = None, seq[:, -(ctx // 2):]
                    logits, state = model.step(new, state)
                else:
                    logits = model(seq[:, -ctx:])[:, -1]
            nxt = pick_next(logits, method, top_k=top_k, top_p=top_p, temperature=temperature, gen=gen)
            yield int(nxt)
            if eos_id is not None and int(nxt) == eos_id:
                break
            new = nxt[:, None]
            seq = torch.cat([seq, new], dim=1)
    finally:
        model.train(was_training)


def generate(model, prompt: list[int], max_new_tokens: int, **kw) -> list[int]:
    """The prompt's continuation (new token ids only), stopping early at eos_id (see `stream`)."""
    return list(stream(model, prompt, max_new_tokens, **kw))


def _short(e: BaseException) -> str:
    return " ".join(str(e).split())[:160] or type(e).__name__


def load(checkpoint: str | Path, device: str = "cpu", *, run: dict | None = None):
    """(model, tokenizer) from a checkpoint written by lib.train for a language-modelling task.

    Loaded with weights_only=True (lib.train.load_checkpoint): a checkpoint holds tensors, plain
    containers and strings only, so a file from an untrusted source cannot run code. The model and
    config classes come from MODELS by the name the checkpoint stores; nothing is imported by a name
    read from the file. `run` ({'study', 'run', 'seed'}, from find_checkpoint): the run the file must
    hold. A bad file is a ValueError or CheckpointError whose one-line message names it."""
    path = Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    saved = load_checkpoint(path, map_location=device)  # refuses folders, pipes and devices before opening them
    meta = saved.get("task_meta") or {}
    if not isinstance(meta, dict) or "tokenizer" not in meta or not saved.get("model_class"):
        raise ValueError(f"{path} is not a language-model checkpoint (no tokenizer or model class saved in it)")
    name = saved["model_class"]
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"{path}: model class {str(name)[:80]!r} is not one generate can build; allowed: {sorted(MODELS)}")
    model_cls, config_cls = MODELS[name]
    config_name = f"{config_cls.__module__}:{config_cls.__qualname__}"
    if saved.get("model_config_class") != config_name:
        raise ValueError(f"{path}: model config class {str(saved.get('model_config_class'))[:80]!r} does not go with {name}; "
                         f"allowed: [{config_name!r}]")
    config = saved.get("config") if isinstance(saved.get("config"), dict) else {}
    try:
        cfg = config_cls.load(config.get("model"), where=f"{path}: config.model")
    except ConfigError as e:
        raise ValueError(str(e)) from None
    if run is not None:
        _check_run(path, saved, cfg, run)
    try:
        tok = tokenizer_from_json(meta["tokenizer"])
    except Exception as e:  # bad JSON, no 'kind', or HF tokenizers' own parse error
        raise ValueError(f"{path}: task_meta.tokenizer is not a tokenizer saved by lib.data.tokenizers "
                         f"(kind 'bytes' or 'bpe'): {_short(e)}") from None
    if getattr(tok, "vocab_size", None) != cfg.vocab:
        raise ValueError(f"{path}: the tokenizer has {getattr(tok, 'vocab_size', None)} tokens but config.model.vocab is {cfg.vocab}")
    model = model_cls(cfg)
    weights = saved["model"]
    try:
        if not isinstance(weights, dict):
            raise TypeError(f"'model' is a {type(weights).__name__}, not a state dict")
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError, KeyError) as e:
        raise ValueError(f"{path}: the weights do not match config.model ({_short(e)})") from None
    return model.to(device).eval(), tok


def _check_run(path: Path, saved: dict, cfg: LMConfig, run: dict) -> None:
    """The file holds the run asked for: by its stored identity, or (files written before identities
    were stored) by its config's run name and seed."""
    stored = saved.get("identity")
    if isinstance(stored, dict):
        held = {k: stored.get(k) for k in ("study", "run", "seed")}
    else:
        train = (saved.get("config") or {}).get("train") or {}
        held = {"study": run["study"], "run": cfg.name, "seed": train.get("seed")}
    if held != {k: run[k] for k in ("study", "run", "seed")}:
        raise ValueError(f"{path} holds the run {provenance.describe_run(held)}, not {provenance.describe_run(run)}: "
                         "it was renamed or swapped; put it back, or delete it")


def find_checkpoint(study: str, run: str, seed: int | None = None, root: Path | None = None) -> tuple[Path, dict]:
    """The checkpoint of `run` (a run name, or its leading part) and `seed` (None: the lowest) in
    <root>/<study>/ (root: the checkpoint folder, lib.paths.CHECKPOINTS); of several runs that match,
    or several trainings of one run, the most recently written. Returns (path, {'study', 'run', 'seed'})."""
    root = paths.CHECKPOINTS if root is None else Path(root)
    folder = root / study
    if "/" in study or study in ("", ".", "..") or not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise ValueError(f"--study {study!r}: no such study in {root}; studies with checkpoints: {known}")
    found = [(m["run"], int(m["seed"]), p) for p in folder.iterdir() if (m := RUN_FILE.match(p.name)) and p.is_file()]
    matching = [f for f in found if f[0] == run or f[0].startswith(run + "-")]
    if not matching:
        raise ValueError(f"--run {run!r}: no checkpoint of that run in {folder}; runs there: {sorted({r for r, _, _ in found})}")
    if len(names := sorted({r for r, _, _ in matching})) > 1:  # e.g. the cpu profile's run and a smaller test run
        name = max(matching, key=lambda f: f[2].stat().st_mtime)[0]
        print(f"--run {run!r} matches {names} in {folder}; using the most recently trained, {name} "
              "(give a full name to pick another)", file=sys.stderr)
        matching = [f for f in matching if f[0] == name]
    name = matching[0][0]
    seeds = sorted({s for _, s, _ in matching})
    if seed is None:
        seed = seeds[0]
    if seed not in seeds:
        raise ValueError(f"--seed {seed}: no checkpoint of {name} with that seed in {folder}; seeds: {seeds}")
    path = max((p for _, s, p in matching if s == seed), key=lambda p: p.stat().st_mtime)
    return path, {"study": study, "run": name, "seed": seed}


def _int_in(name: str, lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text[:40]!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{name} must be in [{lo}, {hi}], got {str(v)[:40]}")
        return v
    return parse


def _float_in(name: str, lo: float, hi: float, open_lo: bool = False):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text[:40]!r}") from None
        if not (lo < v if open_lo else lo <= v) or not v <= hi:  # also false for NaN
            raise argparse.ArgumentTypeError(f"{name} must be in {'(' if open_lo else '['}{lo}, {hi}], got {v}")
        return v
    return parse


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="python -m lib.generate", description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--checkpoint", nargs="+", help="a checkpoint; given several (a glob), the newest is used")
    where.add_argument("--study", help="the study whose checkpoint to use (with --run), e.g. small_lms")
    ap.add_argument("--run", help="with --study: a run name or its leading part, e.g. gpt")
    ap.add_argument("--prompt", default="Once upon a time")
    ap.add_argument("--method", choices=METHODS, default="top_p")
    ap.add_argument("--top-k", type=_int_in("--top-k", 1, TOP_K_MAX), default=40)
    ap.add_argument("--top-p", type=_float_in("--top-p", TOP_P_MIN, 1.0), default=0.9)
    ap.add_argument("--temperature", type=_float_in("--temperature", *TEMPERATURE_RANGE), default=1.0)
    ap.add_argument("--max-new-tokens", type=_int_in("--max-new-tokens", 1, MAX_NEW_TOKENS), default=120)
    ap.add_argument("--seed", type=_int_in("--seed", 0, SEED_MAX), default=None,
                    help="the sampling seed (default 0); with --study/--run also the run's seed (default: its lowest)")
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)  # a bad option: argparse prints one usage line and the error, exit 2
    if (args.study is None) != (args.run is None):
        ap.error("--study and --run go together (or give --checkpoint)")
    if not args.prompt:
        print("error: --prompt must not be empty (the model needs at least one token to continue)", file=sys.stderr)
        return 2
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError as e:  # undecodable bytes in argv arrive as lone surrogates
        print(f"error: --prompt is not valid UTF-8 (at character {e.start}); give it as UTF-8 text", file=sys.stderr)
        return 2
    try:
        if args.study is not None:
            path, run = find_checkpoint(args.study, args.run, args.seed)
        else:
            path, run = max(args.checkpoint, key=lambda p: Path(p).stat().st_mtime if Path(p).exists() else -1), None
            if len(args.checkpoint) > 1:
                print(f"using the newest of {len(args.checkpoint)} checkpoints: {path}", file=sys.stderr)
        model, tok = load(path, run=run)
    except (FileNotFoundError, ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: cannot read {e.filename or path}: {e.strerror or e}", file=sys.stderr)
        return 2
    prompt = tok.encode(args.prompt)
    if not prompt:
        print(f"error: --prompt {args.prompt[:40]!r} encodes to no tokens with the checkpoint's tokenizer", file=sys.stderr)
        return 2
    _write(args.prompt)
    pending: list[int] = []  # tokens not printed yet: a character may be cut between byte tokens
    try:
        for token in stream(model, prompt, args.max_new_tokens, method=args.method, top_k=args.top_k, top_p=args.top_p,
                            temperature=args.temperature, seed=args.seed or 0, cache=not args.no_cache, eos_id=tok.eos_id):
            pending.append(token)
            text = tok.decode(pending)
            if not text.endswith("\ufffd") or len(pending) >= HOLD_BACK:
                _write(text)
                pending = []
    except KeyboardInterrupt:
        _write(tok.decode(pending) + "\n")
        return 130
    _write(tok.decode(pending) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
