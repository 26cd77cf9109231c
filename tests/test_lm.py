"""Small language models: corpus, tokenizers, masked mixer, generation (issue #8)."""
import json

import pytest
import torch

from lib.data.corpus import load_tinystories, stories, word_counts
from lib.data.tokenizers import BPETokenizer, ByteTokenizer, tokenizer_from_json
from lib.tasks.lm import LMTask, TextConfig, split_documents, unigram_entropy
from lib.generate import generate, load, main, pick_next
from lib.models.lm import LanguageModel, LMConfig
from lib.train import TrainConfig, train

SMALL = dict(vocab=300, ctx=24, d_model=32, n_layer=2, d_state=8, d_head=8, chunk=8)


def lm(arch: str, **kw) -> LanguageModel:
    torch.manual_seed(0)
    return LanguageModel(LMConfig(arch=arch, **{**SMALL, "n_head": 2, **kw})).double()


# --- corpus and tokenizers -----------------------------------------------------------------------
def test_stories_are_seeded_and_varied():
    a, b = stories(50, seed=3), stories(50, seed=3)
    assert a == b and stories(50, seed=4) != a
    assert len(set(a)) == 50 and all(s.endswith("The end.") for s in a)
    assert len(word_counts(stories(2000))) >= 600  # a large vocabulary (the grammar's lists: ~700 words)


def test_document_split_is_disjoint_and_deterministic():
    docs = [f"doc {i}" for i in range(100)]
    train_docs, val_docs = split_documents(docs, 0.1, seed=0)
    assert len(val_docs) == 10 and not set(train_docs) & set(val_docs) and sorted(train_docs + val_docs) == sorted(docs)
    assert split_documents(docs, 0.1, seed=0) == (train_docs, val_docs)
    task = LMTask(TextConfig(n_docs=200, tokenizer="bytes", ctx=32, val_windows=4))
    assert not set(task.train_docs) & set(task.val_docs)


@pytest.mark.parametrize("kind", ["bytes", "bpe"])
def test_tokenizer_round_trips(kind):
    docs = stories(300)
    tok = ByteTokenizer() if kind == "bytes" else BPETokenizer.train(docs[:200], 1000)
    for text in docs[200:210] + ['"Hello!" said Tom, and he smiled.']:
        ids = tok.encode(text)
        assert tok.decode(ids) == text and tok.eos_id not in ids
    if kind == "bytes":
        assert tok.decode(tok.encode("naïve – ünïcode")) == "naïve – ünïcode"
    else:
        assert 300 < tok.vocab_size <= 1000 and len(tok.encode(docs[0])) < len(docs[0]) / 2  # merges shorten the text
    again = tokenizer_from_json(tok.to_json())
    assert again.encode(docs[0]) == tok.encode(docs[0]) and again.eos_id == tok.eos_id


def test_unigram_entropy():
    assert unigram_entropy(torch.tensor([0, 1, 2, 3] * 5)) == pytest.approx(torch.log(torch.tensor(4.0)).item())
    assert unigram_entropy(torch.tensor([7] * 9)) == 0.0


def test_tinystories_local_files(tmp_path):
    texts = ["Once upon a time there was a cat.", "Tom had a red ball.\nHe liked it."]
    txt = tmp_path / "stories.txt"
    txt.write_text("<|endoftext|>".join(texts) + "<|endoftext|>\n", encoding="utf-8")
    jsonl = tmp_path / "stories.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t}) for t in texts), encoding="utf-8")
    assert load_tinystories(txt) == texts == load_tinystories(jsonl)
    assert load_tinystories(txt, n=1) == texts[:1]
    with pytest.raises(FileNotFoundError):
        load_tinystories(tmp_path / "missing.txt")
    task = LMTask(TextConfig(corpus="tinystories", path=str(txt), tokenizer="bytes", ctx=8, val_frac=0.5, val_windows=2))
    assert task.val_x.shape[1] == 9


def test_text_config_errors_name_the_key():
    with pytest.raises(ValueError, match="corpus"):
        TextConfig(corpus="wiki")
    with pytest.raises(ValueError, match="tokenizer"):
        TextConfig(tokenizer="words")
    with pytest.raises(ValueError, match="arch"):
        LMConfig(arch="rnn")


# --- models ------------------------------------------------------------------------------------
ARCH_CASES = [("mixer", {}), ("mixer", {"expand": 2}), ("mixer", {"n_head": 1}), ("gpt", {}), ("ssd", {})]


@pytest.mark.parametrize("arch,kw", ARCH_CASES)
def test_causal(arch, kw):
    """Perturbing token j changes no logit before j, and does change logits at j."""
    model = lm(arch, **kw)
    x = torch.randint(0, 300, (2, 24))
    base = model(x)
    for j in (0, 7, 23):
        y = x.clone()
        y[:, j] = (y[:, j] + 1) % 300
        out = model(y)
        assert torch.equal(out[:, :j], base[:, :j]), f"{arch}: position < {j} changed"
        assert (out[:, j] - base[:, j]).abs().max() > 1e-6


@pytest.mark.parametrize("kw", [{"n_head": 1}, {"n_head": 2, "expand": 2}])
def test_mixer_masked_weights_stay_zero(kw):
    model = lm("mixer", **kw).float()
    mats = [m for m in model.modules() if hasattr(m, "mask") and isinstance(m.mask, torch.Tensor)]
    assert mats and all(torch.equal(m.weight * (1 - m.mask), torch.zeros_like(m.weight)) for m in mats)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        x = torch.randint(0, 300, (4, 24))
        torch.nn.functional.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad()
    for m in mats:
        assert torch.equal(m.weight * (1 - m.mask), torch.zeros_like(m.weight))  # exactly zero
        assert (m.weight * m.mask).abs().sum() > 0


def test_mixer_parameter_count():
    """Flat block: H(T^2 + T) token mixing (the reference's T^2 + T per head) + FFN 8D^2 + 5D + two LayerNorms."""
    V, T, D, L, H = 300, 24, 32, 2, 2
    model = lm("mixer", n_head=H)
    block = H * (T * T + T) + 8 * D * D + 5 * D + 4 * D
    assert model.n_params() == V * D + L * block + 2 * D
    live = torch.ones(T, T).tril().sum().item()
    assert live == T * (T + 1) / 2  # about half the T^2 entries are live


def test_shorter_sequence_equals_prefix_of_window():
    for arch, kw in ARCH_CASES:
        model = lm(arch, **kw)
        x = torch.randint(0, 300, (2, 24))
        assert torch.allclose(model(x[:, :10]), model(x)[:, :10], atol=1e-10), arch


# --- generation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["gpt", "ssd", "mixer"])
def test_cached_generation_equals_uncached(arch):
    model = lm(arch)
    prompt = torch.randint(0, 300, (7,)).tolist()
    fast = generate(model, prompt, 12, cache=True)
    slow = generate(model, prompt, 12, cache=False)
    assert fast == slow and len(fast) == 12


@pytest.mark.parametrize("arch", ["gpt", "ssd"])
def test_step_logits_equal_forward(arch):
    model = lm(arch)
    x = torch.randint(0, 300, (2, 16))
    full = model(x)
    logits, state = model.step(x[:, :5])
    assert torch.allclose(logits, full[:, 4], atol=1e-10)
    for t in range(5, 16):
        logits, state = model.step(x[:, t : t + 1], state)
        assert torch.allclose(logits, full[:, t], atol=1e-10)


def test_sampling_methods():
    gen = torch.Generator().manual_seed(0)
    logits = torch.tensor([[5.0, 4.0, 0.0, -1.0]])
    assert pick_next(logits).item() == 0
    draws = {pick_next(logits, "top_k", top_k=2, gen=gen).item() for _ in range(200)}
    assert draws == {0, 1}
    draws = {pick_next(logits, "top_p", top_p=0.5, gen=gen).item() for _ in range(50)}
    assert draws == {0}  # p(0) = 0.72 >= 0.5: the nucleus is one token
    with pytest.raises(ValueError, match="method"):
        pick_next(logits, "beam")


@pytest.mark.parametrize("arch", ["mixer", "gpt", "ssd"])
def test_tiny_training_lowers_loss_and_checkpoint_generates(arch, tmp_path, capsys):
    task = LMTask(TextConfig(n_docs=300, tokenizer="bytes", ctx=32, val_windows=8))
    torch.manual_seed(0)
    model = LanguageModel(LMConfig(arch=arch, vocab=task.vocab_size, ctx=32, d_model=32, n_layer=2, n_head=2, d_state=8, d_head=8, chunk=8))
    ckpt = tmp_path / "lm.pt"
    hist = train(model, task, TrainConfig(steps=60, batch_size=16, lr=3e-3, eval_every=60, warmup_steps=5), checkpoint=ckpt)
    assert hist.val_loss.iloc[-1] < 0.75 * hist.val_loss.iloc[0]
    again, tok = load(ckpt)
    x = task.val_x[:2, :-1]
    assert torch.equal(again(x), model.eval()(x))
    assert main(["--checkpoint", str(ckpt), "--prompt", "Once upon", "--max-new-tokens", "20", "--method", "greedy"]) == 0
    assert capsys.readouterr().out.startswith("Once upon")
    assert main(["--checkpoint", str(tmp_path / "none.pt")]) == 2


def test_saved_activation_bytes_counts_what_backward_keeps():
    from lib.memory import fwd_bwd_memory_mb, saved_activation_bytes

    x = torch.randn(100, 50, requires_grad=True)
    w = torch.randn(50, 20, requires_grad=True)
    assert saved_activation_bytes(lambda: (x @ w).sum()) == (100 * 50 + 50 * 20) * 4  # mm keeps both operands
    assert x.grad is not None and w.grad is not None  # the backward pass ran
    small = fwd_bwd_memory_mb(lambda: torch.tanh(torch.randn(10, 1000, requires_grad=True)).sum())
    big = fwd_bwd_memory_mb(lambda: torch.tanh(torch.randn(40, 1000, requires_grad=True)).sum())
    assert big == pytest.approx(4 * small)  # tanh keeps its output: linear in length
