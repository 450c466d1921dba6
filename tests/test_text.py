"""What the user asked: the one rule the analysis, the dashboard and the offline provider share."""

from __future__ import annotations

from llmscope.text import content_text, conversation_text, last_user_text, user_text

CHAT = [
    {"role": "system", "content": "You are a support agent."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "an answer"},
    {"role": "user", "content": [{"type": "text", "text": "where is"}, {"type": "image_url"}]},
]


def test_content_text_reads_strings_and_text_parts() -> None:
    assert content_text("plain") == "plain"
    assert content_text([{"type": "text", "text": "a"}, "junk", {"text": "b"}]) == "a b"
    assert content_text(None) == ""


def test_the_last_user_turn_counts() -> None:
    assert last_user_text(CHAT) == "where is "
    assert last_user_text([{"role": "system", "content": "s"}]) == ""
    assert last_user_text(None) == ""


def test_user_text_prefers_variables_then_prompt_then_last_user_turn() -> None:
    variables = {"b": {"n": 1}, "a": " why? "}
    assert user_text("rendered prompt", CHAT, variables) == 'why? \n{"n": 1}'
    assert user_text("  a prompt \n", CHAT) == "a prompt"
    assert user_text(None, CHAT, {}) == "where is"
    assert user_text(None, None) == ""


def test_conversation_text_shows_every_turn() -> None:
    assert conversation_text("p", CHAT) == "p"
    assert conversation_text(None, CHAT[:2]) == (
        "system: You are a support agent.\nuser: first question"
    )
    assert conversation_text(None, [{"content": None}]) == "?: "
