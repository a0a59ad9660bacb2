"""The coach reads English: another language is told apart (and named), English is never mistaken for one."""

from __future__ import annotations

import pytest

from coach.language import foreign_language


@pytest.mark.parametrize(
    ("question", "code"),
    [
        ("¿Qué ejercicios debo hacer para los glúteos débiles?", "es"),
        ("Warum tun mir beim Laufen die Knie weh?", "de"),
        ("Combien de séries dois-je faire pour les fessiers ?", "fr"),
        ("Почему у меня болят колени после бега?", "ru"),
        ("Quanto spesso devo allenare i glutei?", "it"),
    ],
)
def test_another_language_is_named(question: str, code: str) -> None:
    assert foreign_language(question) == code


@pytest.mark.parametrize(
    "question",
    [
        "why do my knees hurt?",
        "how many sets?",
        "wat excersises can i do 4 my glutes",
        "clams?",
        "ok",
        "glute bridges or clams?",
        "is it ok to keep running when my knee hurts?",
    ],
)
def test_english_is_english(question: str) -> None:
    assert foreign_language(question, {"glute", "clam", "bridg", "knee"}) is None
