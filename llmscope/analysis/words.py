"""Words of text written without spaces (Japanese, Chinese), for the cluster keywords.

English and every language that separates words by spaces are tokenised by the keyword
vectorizer's word pattern (``keywords.py``). Japanese and Chinese are not: a Japanese prompt
has no spaces, so the pattern takes a whole sentence for one "word" (on the 240-question
Japanese test set in ``tests/analysis/japanese_questions.py``, every keyword was a sentence).

- Japanese (any kana in the text): SudachiPy with its core dictionary (both from PyPI, no
  download at run time), split mode C, so compounds stay whole (ログイン, クレジットカード);
  content words only (nouns, verbs, adjectives, in dictionary form), minus the words that frame
  a question (方法, 教える, できる...). Chosen by measurement on the test set (240 questions x20,
  one core, ``python benchmarks/keywords_japanese.py``): SudachiPy 10,400 texts/s, fugashi +
  unidic-lite 5,300 texts/s (and it splits ログイン into ログ + イン), Janome 690 texts/s.
- Chinese (Han characters, no kana): character bigrams of each run of Han characters, the
  usual choice without a segmenter; Latin words in it as in English.

A token sequence gives unigrams and bigrams; a bigram of two CJK words is shown without a
space between them (返品 + 送料 = 返品送料), as the language writes it.

English contractions are resolved before the word pattern sees them (``without_contractions``):
the pattern stops at the apostrophe, so "don't order" gave the keyword "don order" and "hasn't
got" gave "hasn got". A possessive or "is" keeps its word ("customer's" -> "customer", "it's" ->
"it", a stop word); a negation or auxiliary contraction (n't, 're, 've, 'll, 'd, 'm) is a
function word and goes whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

_KANA = "\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
KANA = re.compile(f"[{_KANA}]")
UNSPACED = re.compile(f"[{_KANA}{_HAN}]")
_CJK_WORD = re.compile(f"^[{_KANA}{_HAN}\u30fc]+$")
_HAN_RUN = re.compile(f"[{_HAN}]+")
_LATIN_WORD = re.compile(r"(?u)\b[^\W\d_]{2,}\b")
_LATIN_TERM = re.compile(r"(?u)[^\W\d_][\w.\-]*[^\W\d_]")  # iPhone, Wi-Fi, node.js
# Sudachi's parts of speech that carry a topic (its first level).
_CONTENT = {"名詞", "動詞", "形容詞"}
# Nouns that are numbers or stand in for another word (数詞, 代名詞 is its own first level).
_NOT_TOPIC = {"数詞", "助数詞"}
# Words that frame a question whatever it is about; they would top every cluster's list.
_FRAMES = """
    する できる ある いる なる おる くる みる しまう 行く 来る 言う 思う 教える 知る 分かる
    下さる くださる 頂く いただく 貰う もらう もらえる くれる かかる いい よい 良い ない 欲しい
    方法 場合 こと もの ため よう とき 時 ところ 何 どこ いつ どう どの 誰 これ それ あれ ここ
    以下 以上 可能 必要 確認 お願い 今
"""
JAPANESE_STOP_WORDS = frozenset(_FRAMES.split())


_POSSESSIVE = re.compile(r"(?u)\b([^\W\d_]+)['\u2019]s\b", re.IGNORECASE)
_CONTRACTION = re.compile(r"(?u)\b[^\W\d_]+['\u2019](?:t|re|ve|ll|d|m)\b", re.IGNORECASE)


def without_contractions(text: str) -> str:
    """``text`` lower-cased, with its English contractions resolved (see the module doc)."""
    text = _CONTRACTION.sub(" ", text.lower())
    return _POSSESSIVE.sub(r"\1", text)


def is_unspaced(text: str) -> bool:
    """Does ``text`` hold Japanese or Chinese characters (so words are not space-separated)?"""
    return UNSPACED.search(text) is not None


@lru_cache(maxsize=1)
def _sudachi() -> Any:
    from sudachipy import dictionary, tokenizer

    return dictionary.Dictionary(dict="core").create(tokenizer.Tokenizer.SplitMode.C)


def japanese_words(text: str) -> list[str]:
    """The content words of a Japanese text, in order, in dictionary form."""
    words = []
    for morpheme in _sudachi().tokenize(text):
        pos = morpheme.part_of_speech()
        if pos[0] not in _CONTENT or pos[1] in _NOT_TOPIC:
            continue
        if pos[0] == "名詞" and pos[1] == "非自立可能":  # こと, ため, もの, よう...
            continue
        word = morpheme.dictionary_form()
        if _CJK_WORD.match(word):
            if len(word) < 2 and not re.match(f"[{_HAN}]", word):  # a lone kana
                continue
            if word in JAPANESE_STOP_WORDS:
                continue
            words.append(word)
        elif _LATIN_TERM.fullmatch(word) and word.lower() not in ENGLISH_STOP_WORDS:
            words.append(word.lower())
    return words


def chinese_words(text: str) -> list[str]:
    """Character bigrams of each Han run (a lone character as itself), and Latin words."""
    units: list[str] = []
    for piece in re.split(f"([{_HAN}]+)", text):
        if _HAN_RUN.fullmatch(piece):
            units.extend(
                [piece] if len(piece) == 1 else [piece[i : i + 2] for i in range(len(piece) - 1)]
            )
        else:
            units.extend(
                w.lower() for w in _LATIN_WORD.findall(piece) if w.lower() not in ENGLISH_STOP_WORDS
            )
    return units


def unspaced_words(text: str) -> list[str]:
    """Japanese or Chinese text's words, by the rule of its script (see the module doc)."""
    return japanese_words(text) if KANA.search(text) else chinese_words(text)


def join_words(words: Iterable[str]) -> str:
    """A phrase as written: no space between two CJK words, a space otherwise."""
    out = ""
    for word in words:
        if out and not (_CJK_WORD.match(out[-1]) and _CJK_WORD.match(word[0])):
            out += " "
        out += word
    return out
