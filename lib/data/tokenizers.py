"""Tokenizers for the small language models: bytes, or a byte-level BPE trained with HF `tokenizers`
on the training documents only. Both serialise to JSON, so a checkpoint carries its tokenizer."""
from __future__ import annotations

import json

class ByteTokenizer:
    """UTF-8 bytes are ids 0..255; <eos> = 256."""

    kind = "bytes"
    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind})


class BPETokenizer:
    """A byte-level BPE trained with HF `tokenizers` (the reference retrained a 4096-token BPE)."""

    kind = "bpe"

    def __init__(self, tok):
        self.tok = tok
        self.eos_id = tok.token_to_id("<eos>")
        self.vocab_size = tok.get_vocab_size()

    @classmethod
    def train(cls, docs: list[str], vocab_size: int = 4096) -> "BPETokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<eos>"], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(docs, trainer)
        return cls(tok)

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text).ids

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode([i for i in ids if i != self.eos_id])

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "tokenizer": self.tok.to_str()})


def tokenizer_from_json(blob: str):
    """Rebuild a tokenizer saved with to_json() (e.g. from a checkpoint's task metadata)."""
    d = json.loads(blob)
    if d["kind"] == "bytes":
        return ByteTokenizer()
    from tokenizers import Tokenizer

    return BPETokenizer(Tokenizer.from_str(d["tokenizer"]))


# ---------------------------------------------------------------------------------------------
# The language-modelling task for lib.train
# ---------------------------------------------------------------------------------------------
