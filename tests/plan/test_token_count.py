"""count_tokens (piece by piece, cached) equals the CLIP tokenizer's count of the whole text."""

from __future__ import annotations

import random

from plan.tokens import clip_tokenizer, count_tokens


def test_count_tokens_equals_the_tokenizer_on_tricky_and_random_text():
    tokenizer = clip_tokenizer()
    texts = ["", "an orange hiking backpack on a trail, golden hour, 35mm", "it's we'll I'M they'D", "a" * 300,
             "Ünïcödé café — naïve “quotes” 日本語 🎒🏔️\ttabs\nnew  lines", "ﬁ ligature Ⅻ ① ΣΑΣ İstanbul ẞ",
             "g\u200bun e\u0301", "a <|endoftext|> b", "<|ENDOFTEXT|> <|startoftext|>", " ".join(["word"] * 90)]
    rng = random.Random(7)
    alphabet = "abcdefghij klmnop,.!é日🎒'\"-_ \u200b\u0301ÀSTs'd<|>\t\n0123456789İẞΣσς\u00a0\u2028ǅ"
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200))) for _ in range(400)]
    for text in texts:
        assert count_tokens(text) == len(tokenizer(text, truncation=False)["input_ids"]), text


def test_ascii_text_is_split_and_counted_as_the_tokenizer_does():
    """ASCII text is split by Python's ``re`` (``_ASCII_PIECES``), other text by ``regex``: the same pieces."""
    from plan.tokens import _ASCII_PIECES, _pieces

    tokenizer = clip_tokenizer()
    rng = random.Random(11)
    ascii_chars = "".join(map(chr, range(128)))
    texts = [f"ab{c}cd {c}{c}x x'{c}s 1{c}2 it'S" for c in ascii_chars]
    texts += ["".join(rng.choice(ascii_chars + "ab cd'st 09 <|>") for _ in range(rng.randint(0, 120)))
              for _ in range(300)]
    specials = ["<|startoftext|>a<|endoftext|>'s x", "x<|endoftext|>9'll<|startoftext|", "<|endoftext|><|endoftext|>"]
    for text in specials:  # as pieces (count_tokens encodes texts naming one whole)
        assert _ASCII_PIECES.findall(text.lower()) == _pieces().findall(text.lower()), repr(text)
    for text in texts:
        assert _ASCII_PIECES.findall(text.lower()) == _pieces().findall(text.lower()), repr(text)
        assert count_tokens(text) == len(tokenizer(text, truncation=False)["input_ids"]), repr(text)


def test_the_bound_without_a_tokenizer_is_never_below_the_count():
    from plan.tokens import most_tokens

    rng = random.Random(13)
    alphabet = "abcdefghij klmnop,.!é日🎒'\"-_ \u200b\u0301ÀSTs'd<|>\t\n0123456789İẞΣσςﬁⅫ①\u0344\u00a0\u2028ǅ"
    texts = ["", "<|endoftext|>", "İİİ", "\u0344" * 20, "ﬁ" * 30] + [
        "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120))) for _ in range(600)]
    for text in texts:
        assert most_tokens(text) >= count_tokens(text), repr(text)


def test_a_style_with_a_short_negative_prompt_loads_without_building_the_tokenizer(repo):
    from plan.styles import load_style_file
    from plan.tokens import clip_bpe

    clip_bpe.cache_clear()
    style = load_style_file(repo / "styles" / "acme" / "v2.yaml")
    assert style.negative_prompt and clip_bpe.cache_info().currsize == 0
