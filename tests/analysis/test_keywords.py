"""Cluster keywords in any language: English by the word pattern, Japanese and Chinese by words."""

from __future__ import annotations

import numpy as np

from llmscope.analysis.keywords import ctfidf_keywords
from llmscope.analysis.words import chinese_words, japanese_words, join_words
from tests.analysis.japanese_questions import QUESTIONS, TOPIC_WORDS, labelled


def test_japanese_keywords_are_words_of_the_topic_not_sentences() -> None:
    texts, labels, topics = labelled()
    words = ctfidf_keywords(texts, np.array(labels))
    assert len(texts) == 240 and len(topics) == 8
    whole = {t.rstrip("？?") for t in texts}
    for c, topic in enumerate(topics):
        assert len(words[c]) == 8
        assert not whole & set(words[c]), words[c]
        assert all(len(w) <= 10 for w in words[c]), words[c]
        assert TOPIC_WORDS[topic] & set(words[c][:3]), (topic, words[c])


def test_japanese_words_keep_compounds_and_drop_question_frames() -> None:
    words = japanese_words("パスワードを忘れてログインできません")
    assert words == ["パスワード", "忘れる", "ログイン"]
    assert japanese_words("クレジットカードの決済がエラーになります") == [
        "クレジットカード",
        "決済",
        "エラー",
    ]
    # Latin words inside Japanese text are lower-cased; English stop words go.
    assert japanese_words("iPhoneのアプリでWi-Fiにつながりません") == [
        "iphone",
        "アプリ",
        "wi-fi",
        "つながる",
    ]


def test_chinese_is_split_into_character_bigrams() -> None:
    bigrams = ["退款", "款什", "什么", "么时", "时候", "候到", "到账"]
    assert chinese_words("退款什么时候到账") == bigrams
    assert chinese_words("我的iPhone无法登录") == ["我的", "iphone", "无法", "法登", "登录"]
    texts = ["退款什么时候到账", "退款申请被拒绝了", "如何申请退款"] * 3 + [
        "密码忘记了怎么办",
        "怎么重置密码",
        "密码错误无法登录",
    ] * 3
    labels = np.array([0] * 9 + [1] * 9)
    words = ctfidf_keywords(texts, labels)
    assert words[0][0] == "退款"
    assert words[1][0] == "密码"


def test_english_keywords_are_unchanged() -> None:
    texts = [
        "How do I reset my password?",
        "I forgot my password and cannot log in",
        "Password reset email never arrived",
        "When will my refund arrive?",
        "Refund still missing after two weeks",
        "How long does a refund take?",
    ]
    # What the word pattern gave before Japanese and Chinese were tokenised.
    words = ctfidf_keywords(texts, np.array([0, 0, 0, 1, 1, 1]), top=4)
    assert words == {
        0: ["password", "reset", "arrived", "email"],
        1: ["refund", "arrive", "does", "long"],
    }


def test_mixed_languages_in_one_run() -> None:
    english = ["How do I reset my password?", "Password reset link expired"] * 5
    japanese = QUESTIONS["returns"][:10]
    words = ctfidf_keywords(english + japanese, np.array([0] * 10 + [1] * 10), top=3)
    assert words[0][0].startswith("password") or words[0][0].startswith("reset")
    assert "返品" in words[1]


def test_cjk_bigrams_are_written_without_a_space() -> None:
    assert join_words(["返品", "送料"]) == "返品送料"
    assert join_words(["password", "reset"]) == "password reset"
    assert join_words(["iphone", "アプリ"]) == "iphone アプリ"


def test_a_memo_shared_with_a_split_class_changes_no_keyword() -> None:
    """The sub-cluster path (``memo``, ``only``) gives what a fresh call gives, in English and
    in Japanese, and analyses only the two documents the split changed."""
    japanese, japanese_labels, _ = labelled()
    english = [
        f"{verb} my {thing} {when}"
        for verb in ("refund", "cancel", "track", "reset")
        for thing in ("card", "order", "password")
        for when in ("today", "now", "please")
    ]
    english_labels = [i // 9 for i in range(len(english))]
    for texts, labels in (
        (english, np.array(english_labels)),
        (japanese, np.array(japanese_labels)),
    ):
        memo: dict = {}
        assert ctfidf_keywords(texts, labels, memo=memo) == ctfidf_keywords(texts, labels)
        before = len(memo)
        split = labels.copy()
        split[np.flatnonzero(labels == 1)[::2]] = sub = int(labels.max()) + 1
        fresh = ctfidf_keywords(texts, split)
        assert ctfidf_keywords(texts, split, memo=memo, only=sub) == {sub: fresh[sub]}
        assert len(memo) == before + 2  # class 1 without the split part, and the split part
        assert fresh[sub] != fresh[1]


def test_contractions_leave_no_fragments() -> None:
    """The word pattern stopped at the apostrophe: "don't order" became "don order"."""
    texts = [
        "I don't order online, my parcel hasn't got here",
        "The parcel hasn't got to me and I don't know why",
        "My parcel's tracking hasn't moved, I can't see it",
        "How do I change my password?",
        "Password change isn't working",
        "I'd like to change the password, it's expired",
    ]
    words = ctfidf_keywords(texts, np.array([0, 0, 0, 1, 1, 1]), top=8)
    terms = [t for terms in words.values() for t in terms]
    fragments = {"don", "hasn", "isn", "can", "parcel s", "d", "ll", "ve"}
    assert not [t for t in terms for w in t.split() if w in fragments]
    assert words[0][0] == "parcel" and "password" in words[1]
    assert "got" in " ".join(words[0])  # the word after the contraction stays
