"""The CLIP BPE tokenizer, built in memory from open_clip's bundled vocabulary (no download).

Used to reject prompts longer than the text encoder's 77 tokens (``count_tokens``: the
``tokenizers`` library's BPE, built as transformers' ``CLIPTokenizer`` builds it, without importing
transformers, which takes seconds), and by render/ as the tokenizer of the tiny offline pipelines
(``clip_tokenizer``). Imports neither torch nor open_clip.
"""

from __future__ import annotations

import gzip
import importlib.util
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

MAX_TOKENS = 77  # CLIP text encoders: 75 tokens + start and end markers


def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def bpe_path() -> Path:
    """open_clip's bundled BPE merges file, located without importing open_clip (torch)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("open-clip-torch is not installed; it ships the CLIP BPE vocabulary")
    return Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"


@lru_cache(maxsize=1)
def vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The exact vocabulary open_clip's SimpleTokenizer builds (49408 entries)."""
    lines = gzip.decompress(bpe_path().read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    vocab = list(_bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab.extend("".join(m) for m in merges)
    vocab.extend(["<|startoftext|>", "<|endoftext|>"])
    return {tok: i for i, tok in enumerate(vocab)}, merges  # type: ignore[return-value]


@lru_cache(maxsize=1)
def clip_tokenizer():  # -> transformers.CLIPTokenizer
    """A transformers ``CLIPTokenizer`` equal to openai/clip-vit-base-patch32's, offline."""
    from transformers import CLIPTokenizer

    vocab, merges = vocab_and_merges()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_TOKENS, pad_token="<|endoftext|>")


_PIECE = r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"
_SPECIAL = ("<|startoftext|>", "<|endoftext|>")


@lru_cache(maxsize=1)
def clip_bpe():  # -> tokenizers.Tokenizer
    """The backend ``clip_tokenizer()`` wraps, built directly with ``tokenizers`` (the same BPE
    model, normalizer, pre-tokenizer and start/end markers as transformers' ``CLIPTokenizer``)."""
    from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import BPE

    vocab, merges = vocab_and_merges()
    tokenizer = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, continuing_subword_prefix="",
                              end_of_word_suffix="</w>", fuse_unk=False, unk_token=_SPECIAL[1]))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
                                                 normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_PIECE), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.add_special_tokens(list(_SPECIAL))
    start, end = (vocab[token] for token in _SPECIAL)
    tokenizer.post_processor = processors.RobertaProcessing((_SPECIAL[1], end), (_SPECIAL[0], start), False, False)
    return tokenizer


# BPE never merges across the pre-tokenizer's pieces, so a text's token count is the sum of its
# pieces' counts: each piece is encoded once per process (words repeat across a sheet's prompts).
_PIECE_TOKENS: dict[str, int] = {}
_PIECE_CACHE_MAX = 500_000


@lru_cache(maxsize=1)
def _pieces():
    import regex  # \p{L}, as the tokenizer's own pattern (a dependency of transformers)

    return regex.compile(_PIECE)


# ``_PIECE`` for lowercased ASCII text (letters a-z, digits 0-9, and the six ASCII characters that
# ``regex``'s \s matches): the same pieces, from Python's faster ``re``. Letters and digits are tried
# first (most pieces; no other alternative but the last starts with one, and the last takes none).
_ASCII_PIECES = re.compile(r"[a-z]+|[0-9]|<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d"
                           r"|[^\t\n\x0b\x0c\r a-z0-9]+")


def most_tokens(text: str) -> int:
    """An upper bound of ``count_tokens(text)`` that needs no tokenizer: every token of the byte-level
    BPE covers at least one byte of the normalised text, plus the start and end markers."""
    return 2 + len(unicodedata.normalize("NFC", text).lower().encode("utf-8"))


def count_tokens(text: str) -> int:
    """Tokens the CLIP text encoder sees for ``text``, start and end markers included: the same
    count as ``clip_tokenizer()(text)``. The text is normalised (NFC, lowercase) and split as the
    tokenizer does, and each piece is counted once per process. Texts naming a special token are
    encoded whole."""
    tokenizer = clip_bpe()
    if "<|" in text:
        return len(tokenizer.encode(text).ids)
    if len(_PIECE_TOKENS) > _PIECE_CACHE_MAX:
        _PIECE_TOKENS.clear()
    if text.isascii():  # NFC changes no ASCII text
        pieces = _ASCII_PIECES.findall(text.lower())
    else:
        pieces = _pieces().findall(unicodedata.normalize("NFC", text).lower())
    counts = list(map(_PIECE_TOKENS.get, pieces))
    if None in counts:  # pieces not seen before
        for piece in pieces:
            if piece not in _PIECE_TOKENS:
                _PIECE_TOKENS[piece] = len(tokenizer.encode(piece).ids) - 2
        counts = list(map(_PIECE_TOKENS.__getitem__, pieces))
    return 2 + sum(counts)  # start and end markers
