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
