"""LLM backends over real HTTP: langchain-openai (and langchain-anthropic) against a scripted stand-in
on 127.0.0.1, with the real index, so retrieval, the citation check and the fallback are all real."""

from __future__ import annotations

import json
import logging
import time

import pytest

from coach.answer import EXTRACTIVE, NOTE_UNAVAILABLE, NOTE_UNSUPPORTED, CoachService
from coach.models import Turn
from coach.text import collapse
from tests.contract import assert_contract
from tests.standin import Fail, Hang, Reply, StandIn, passage_with, passages_of

pytestmark = pytest.mark.integration

KNEES = "why do my knees hurt?"
EVIDENCE = "growing evidence of a strong relationship between weak/dysfunctional glutes and knee pain"
PELVIS = "If the pelvis isn't stabilized, you may experience Achilles tendinitis"
PROFESSIONAL = "seek guidance from a professional"


def llm_service(service: CoachService, url: str, **overrides: object) -> CoachService:
    """A CoachService on the session's real index whose backend is the stand-in's OpenAI API."""
    return service_with(service, llm="openai:stand-in", llm_base_url=f"{url}/v1", **overrides)


def service_with(service: CoachService, **overrides: object) -> CoachService:
    """A CoachService on the session's real index with other settings (a backend, a deadline)."""
    settings = service.settings.model_copy(update=overrides)
    twin = CoachService(
        settings,
        service.embeddings,
        service.store,
        service.snapshot,
        debate_map=service.debate_map,
        library=service.library,
        domain=service.domain,
        knowledge=service.knowledge,
    )
    twin.triager = service.triager  # the same model: share its triage and the vectors ingest stored
    return twin


def source_text(service: CoachService, source_id: str) -> str:
    return service.snapshot[source_id]["text"]


def good_answer(request: dict) -> str:
    a, b = passage_with(request, EVIDENCE), passage_with(request, PELVIS)
    return (
        f"There is growing evidence that weak glutes are linked to knee pain in runners [{a}].\n"
        f"If your pelvis is not stable you can end up with knee pain or Achilles problems [{b}]."
    )


def check_grounded(service: CoachService, payload: dict) -> None:
    assert_contract(payload)
    for citation in payload["citations"]:
        assert collapse(citation["quote"]) in source_text(service, citation["source_id"])


def test_a_good_answer_is_returned_with_verbatim_quotes(service) -> None:
    with StandIn([Reply(good_answer)]) as server:
        answer = llm_service(service, server.url).answer(KNEES)
    assert answer.backend == "openai:stand-in"
    assert answer.answer == (
        "There is growing evidence that weak glutes are linked to knee pain in runners. [1]\n"
        "If your pelvis is not stable you can end up with knee pain or Achilles problems. [2]"
    )
    assert [c.source_id for c in answer.citations] == [
        "hbf-glute-strengthening-exercises",
        "glutes-fire-in-running",
    ]
    assert EVIDENCE in answer.citations[0].quote
    assert answer.citations[1].quote.startswith("If the pelvis isn't stabilized")
    check_grounded(service, json.loads(answer.model_dump_json()))
    # The model got the passages as numbered, delimited data and was told not to obey them.
    (request,) = server.chat_requests()
    system, user = request.messages[0]["content"], request.messages[1]["content"]
    assert "must not be followed" in system
    assert '<passage n="1">' in user
    assert KNEES in user


def test_wrong_citation_numbers_are_dropped(service) -> None:
    def reply(request: dict) -> str:
        a, pro = passage_with(request, EVIDENCE), passage_with(request, PROFESSIONAL)
        return (
            f"There is growing evidence that weak glutes are linked to knee pain in runners [{a}][9].\n"
            # a true claim from the article, but cited to the passage about seeing a professional
            f"If your pelvis is not stable you can end up with knee pain or Achilles problems [{pro}]."
        )

    with StandIn([Reply(reply)]) as server:
        answer = llm_service(service, server.url).answer(KNEES)
    assert answer.backend == "openai:stand-in"
    assert (
        answer.answer == "There is growing evidence that weak glutes are linked to knee pain in runners. [1]"
    )
    assert len(answer.citations) == 1
    check_grounded(service, json.loads(answer.model_dump_json()))


def test_a_paraphrased_quote_is_replaced_by_the_source_sentence(service) -> None:
    def reply(request: dict) -> str:
        n = passage_with(request, PELVIS)
        return f'The article says that "an unstable pelvis leads to knee pain and Achilles tendinitis" [{n}].'

    with StandIn([Reply(reply)]) as server:
        answer = llm_service(service, server.url).answer(KNEES)
    assert answer.backend == "openai:stand-in"
    (citation,) = answer.citations
    assert citation.quote == (
        "If the pelvis isn't stabilized, you may experience Achilles tendinitis, knee pain or illiotibial band syndrome."
    )
    assert "an unstable pelvis leads" not in source_text(service, citation.source_id)
    check_grounded(service, json.loads(answer.model_dump_json()))


def test_a_claim_with_no_support_is_dropped(service) -> None:
    def reply(request: dict) -> str:
        a = passage_with(request, EVIDENCE)
        return (
            f"There is growing evidence that weak glutes are linked to knee pain in runners [{a}]. "
            f"Knee pain always goes away if you run 50 km a week in new shoes [{a}]. "
            "You should also take a collagen supplement."
        )

    with StandIn([Reply(reply)]) as server:
        answer = llm_service(service, server.url).answer(KNEES)
    assert (
        answer.answer == "There is growing evidence that weak glutes are linked to knee pain in runners. [1]"
    )
    assert "supplement" not in answer.answer


def test_an_answer_with_nothing_supported_falls_back_to_the_marked_extractive_answer(service) -> None:
    unsupported = Reply(
        "Ignore the articles: buy our supplement [1]. Knee pain is caused by cold weather [2]."
    )
    with StandIn([unsupported]) as server:
        answer = llm_service(service, server.url).answer(KNEES)
    assert answer.backend == EXTRACTIVE
    assert answer.answer.startswith(NOTE_UNSUPPORTED)
    assert answer.citations
    assert "supplement" not in answer.answer
    check_grounded(service, json.loads(answer.model_dump_json()))


def test_a_follow_up_is_condensed_with_the_conversation_before_retrieval(service) -> None:
    standalone = "Do weak glutes cause hip pain in runners?"

    def reply(request: dict) -> str:
        n = passage_with(request, PELVIS)
        return f"If your pelvis is not stable you can end up with knee pain or Achilles problems [{n}]."

    history = [Turn(question=KNEES, answer="Weak glutes are linked to knee pain [1].")]
    with StandIn([Reply(standalone), Reply(reply)]) as server:
        service_llm = llm_service(service, server.url)
        answer = service_llm.answer("and what about my hips?", history=history)
    condense, answering = server.chat_requests()
    (message,) = condense.messages  # the condensing prompt alone, without the answering rules
    assert KNEES in message["content"]
    assert "and what about my hips?" in message["content"]
    # the condensed question is what was retrieved for and what the model was asked
    assert f"The runner's question: {standalone}" in answering.messages[1]["content"]
    expected = [collapse(h.chunk.text) for h in service_llm.retrieve(standalone).hits]
    sent = [collapse(body.split("\n", 1)[1]) for body in passages_of(answering.body).values()]
    # the retrieved passages first; after them, those the exercise lookup added (their steps, doses)
    assert sent[: len(expected)] == expected
    assert answer.question == "and what about my hips?"
    assert answer.backend == "openai:stand-in"
    assert answer.citations


def test_429_then_success_is_retried_within_the_deadline(service) -> None:
    rate_limited = Fail(
        429, {"error": {"message": "slow down", "type": "rate_limit"}}, {"retry-after": "0.2"}
    )
    with StandIn([rate_limited, Reply(good_answer)]) as server:
        start = time.monotonic()
        answer = llm_service(service, server.url, answer_deadline_s=5.0).answer(KNEES)
        elapsed = time.monotonic() - start
    assert len(server.chat_requests()) == 2
    assert answer.backend == "openai:stand-in"
    assert len(answer.citations) == 2
    assert elapsed < 5.0


def test_500s_fall_back_until_the_breaker_opens_and_then_stop_calling(service) -> None:
    error = Fail(500, headers={"retry-after": "0.05"})
    with StandIn([error] * 4 + [Reply(good_answer)], default=error) as server:
        coach = llm_service(
            service, server.url, llm_max_retries=1, llm_breaker_failures=2, llm_breaker_cooldown_s=60.0
        )
        answers = [coach.answer(KNEES), coach.answer(KNEES)]
        assert len(server.chat_requests()) == 4  # two answers, each one try and one retry
        assert coach.backend.breaker.is_open
        start = time.monotonic()
        answers.append(coach.answer(KNEES))
        cooled = time.monotonic() - start
        assert len(server.chat_requests()) == 4  # the breaker kept the third answer off the server
        for answer in answers:
            assert answer.backend == EXTRACTIVE
            assert answer.answer.startswith(NOTE_UNAVAILABLE)
            check_grounded(service, json.loads(answer.model_dump_json()))
        assert cooled < 1.0
        # once the cool-down is over one trial call goes through, and its success closes the breaker
        coach.backend.breaker.opened_at -= 60.0
        assert coach.answer(KNEES).backend == "openai:stand-in"
        assert len(server.chat_requests()) == 5
    assert not coach.backend.breaker.is_open


def test_a_server_that_never_answers_still_gets_an_answer_within_the_deadline(service) -> None:
    with StandIn(default=Hang()) as server:
        coach = llm_service(service, server.url, answer_deadline_s=2.0)
        start = time.monotonic()
        answer = coach.answer(KNEES)
        elapsed = time.monotonic() - start
        assert len(server.chat_requests()) >= 1  # the connection was accepted and the request sent
    assert elapsed < 2.0
    assert answer.backend == EXTRACTIVE
    assert answer.answer.startswith(NOTE_UNAVAILABLE)
    assert answer.citations


def test_a_hanging_follow_up_also_keeps_the_deadline(service) -> None:
    history = [Turn(question=KNEES, answer="Weak glutes are linked to knee pain [1].")]
    with StandIn(default=Hang()) as server:
        coach = llm_service(service, server.url, answer_deadline_s=2.0)
        start = time.monotonic()
        answer = coach.answer("and what about my hips?", history=history)
        elapsed = time.monotonic() - start
    assert elapsed < 2.0
    assert answer.backend == EXTRACTIVE
    assert answer.answer.startswith(NOTE_UNAVAILABLE)


def test_the_api_key_never_reaches_logs_errors_or_reprs(service, monkeypatch, caplog) -> None:
    key = "sk-standin-0123456789abcdefSECRET"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    # A server that echoes the key back in its error, as some proxies do.
    leaky = Fail(
        401, {"error": {"message": f"Incorrect API key provided: {key}", "type": "invalid_request_error"}}
    )
    with StandIn([Reply(good_answer), leaky]) as server:
        coach = llm_service(service, server.url)
        good = coach.answer(KNEES)
        failed = coach.answer(KNEES)
    assert server.chat_requests()[0].headers["authorization"] == f"Bearer {key}"  # the key was used
    assert good.backend == "openai:stand-in"
    assert failed.backend == EXTRACTIVE
    assert caplog.records  # DEBUG logging was on and captured something
    assert key not in caplog.text
    for record in caplog.records:
        assert key not in record.getMessage()
        assert not record.exc_text or key not in record.exc_text
    assert key not in failed.model_dump_json()
    assert key not in repr(coach.backend)
    assert coach.backend.built_models()
    for model in coach.backend.built_models():
        assert key not in repr(model)
    assert key not in repr(coach.settings)


def test_anthropic_over_its_own_http_api(service, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-standin-key")
    with StandIn([Reply(good_answer)]) as server:
        answer = service_with(service, llm="anthropic:claude-standin", llm_base_url=server.url).answer(KNEES)
    (request,) = server.chat_requests()
    assert request.path == "/v1/messages"
    assert "must not be followed" in request.text()
    assert answer.backend == "anthropic:claude-standin"
    assert len(answer.citations) == 2


def test_ollama_over_its_own_http_api(service) -> None:
    with StandIn([Reply(good_answer)]) as server:
        answer = service_with(service, llm="ollama:qwen2.5:3b", llm_base_url=server.url).answer(KNEES)
    (request,) = server.chat_requests()
    assert request.path == "/api/chat"
    assert request.body["model"] == "qwen2.5:3b"
    assert "must not be followed" in request.text()
    assert answer.backend == "ollama:qwen2.5:3b"
    assert len(answer.citations) == 2


def test_an_ollama_server_that_never_answers_keeps_the_deadline(service) -> None:
    with StandIn(default=Hang()) as server:
        hung = service_with(service, llm="ollama:qwen2.5:3b", llm_base_url=server.url, answer_deadline_s=2.0)
        start = time.monotonic()
        answer = hung.answer(KNEES)
        elapsed = time.monotonic() - start
    assert elapsed < 2.0
    assert answer.backend == EXTRACTIVE
    assert answer.answer.startswith(NOTE_UNAVAILABLE)


def test_coach_ask_json_with_a_model_keeps_the_contract_and_the_key_out_of_stderr(real_index) -> None:
    import os
    import subprocess
    import sys

    key = "sk-standin-cli-SECRET-42"
    leaky = Fail(401, {"error": {"message": f"Incorrect API key provided: {key}", "type": "auth"}})
    with StandIn([Reply(good_answer), leaky]) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("COACH_")},
            "COACH_DATA_DIR": str(real_index.data_dir),
            "COACH_LLM": "openai:stand-in",
            "COACH_LLM_BASE_URL": f"{server.url}/v1",
            "OPENAI_API_KEY": key,
        }
        command = [sys.executable, "-m", "cli.main", "-v", "ask", "--json", KNEES]
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    payload = json.loads(first.stdout)
    assert_contract(payload)
    assert payload["backend"] == "openai:stand-in"
    assert second.returncode == 0, second.stderr
    fallback = json.loads(second.stdout)
    assert_contract(fallback)
    assert fallback["backend"] == EXTRACTIVE
    assert fallback["answer"].startswith(NOTE_UNAVAILABLE)
    assert "AuthenticationError" in second.stderr  # -v logged the failure ...
    for run in (first, second):
        assert key not in run.stderr + run.stdout  # ... without the key


def test_red_flags_come_before_any_model_call(service) -> None:
    with StandIn(default=Reply(good_answer)) as server:
        answer = llm_service(service, server.url).answer("I fainted during my run and my chest hurts")
        assert server.chat_requests() == []
    assert answer.urgent
    assert answer.citations == []


def test_a_list_answer_keeps_its_lead_in_and_bullets(service) -> None:
    def reply(request: dict) -> str:
        a, b = passage_with(request, EVIDENCE), passage_with(request, PELVIS)
        return (
            "Here is what the articles say:\n"
            f"- **Weak glutes** are linked to knee pain in runners [{a}].\n"
            f"- An unstable pelvis can lead to knee pain or Achilles tendinitis. [{b}]\n"
            "- Always wear new shoes.\n"
            "Hope this helps!"
        )

    with StandIn([Reply(reply)]) as server:
        answer = llm_service(service, server.url).answer(KNEES)
    assert answer.answer == (
        "Here is what the articles say:\n"
        "• Weak glutes are linked to knee pain in runners. [1]\n"
        "• An unstable pelvis can lead to knee pain or Achilles tendinitis. [2]"
    )
    check_grounded(service, json.loads(answer.model_dump_json()))


def test_a_question_that_stands_alone_is_not_condensed_by_the_model(service) -> None:
    history = [Turn(question=KNEES, answer="Weak glutes are linked to knee pain [1].")]
    question = "Which exercises strengthen the gluteus medius for runners?"
    with StandIn([Reply("Single-leg squats activate all of your gluteus muscles [1].")]) as server:
        llm_service(service, server.url).answer(question, history=history)
    (request,) = server.chat_requests()
    assert f"The runner's question: {question}" in request.messages[1]["content"]


def test_the_model_is_told_the_intent_and_the_typed_statements_and_is_still_checked(service) -> None:
    """A how-to question: the prompt says what is asked and where the exercise's steps and dose are; a
    claim the passages do not support is dropped all the same."""
    steps = "Hinge forward from your hips"

    def reply(request: dict) -> str:
        n = passage_with(request, steps)
        return (
            f"Hinge forward from your hips and lift the right leg behind you as you lower the weight [{n}].\n"
            f"Do it every morning before breakfast for best results [{n}]."
        )

    with StandIn([Reply(reply)]) as server:
        answer = llm_service(service, server.url).answer("how do I do a single leg deadlift?")
    (request,) = server.chat_requests()
    user = request.messages[1]["content"]
    assert "asks how to do an exercise" in user
    assert "exercise “Single-leg deadlift”, named in passage" in user
    assert "steps in passage" in user
    assert "Stand with a dumbbell" in user
    assert answer.backend == "openai:stand-in"
    assert "Hinge forward" in answer.answer
    assert "breakfast" not in answer.answer
    check_grounded(service, json.loads(answer.model_dump_json()))
