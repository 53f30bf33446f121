"""The LLM path end to end, against a real local chat-completions server with scripted answers
(it stands in for an external LLM service such as vLLM, Ollama or OpenAI)."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from autointerp import llm as roles
from autointerp.examples import split
from autointerp.llm import LLM, LLMConfig, LLMError, Usage
from autointerp.pipeline import explain_llm
from tests.autointerp.chat_server import COMPLETION_TOKENS, PROMPT_TOKENS, ChatServer, Pieces, serve
from tests.autointerp.synthetic import feature, on_token

AUSTIN = feature(on_token(" Austin"), [(" Austin",)])


def knows_austin(messages: list[dict[str, str]]) -> str | Pieces:
    """A model that has worked out that the feature fires on " Austin"."""
    system, prompt = messages[0]["content"], messages[1]["content"]
    if system == roles.EXPLAIN_SYSTEM:
        return "The feature fires on the city name.\nExplanation: the word Austin"
    if system == roles.SIMULATE_SYSTEM:
        rows = re.findall(r"^(\d+)\t(\".*\")$", prompt, re.M)
        return "".join(f"{i}\t{10 if json.loads(t) == ' Austin' else 0}\n" for i, t in rows)
    texts = re.findall(r"^\d+\. (.*)$", prompt, re.M)
    if "fires somewhere in it" in prompt:
        return json.dumps([int("Austin" in t) for t in texts])
    marked = [re.findall(r"<<(.*?)>>", t) for t in texts]
    return json.dumps([int(all(m == " Austin" for m in ms)) for ms in marked])


def hedging(messages: list[dict[str, str]]) -> str | Pieces:
    """Writes explanations, then answers every simulation with logprobs split between 0 and 10
    on " Austin" (expected value 5) and sure 0s elsewhere."""
    system, prompt = messages[0]["content"], messages[1]["content"]
    if system != roles.SIMULATE_SYSTEM:
        return knows_austin(messages)
    pieces: Pieces = []
    for i, token in re.findall(r"^(\d+)\t(\".*\")$", prompt, re.M):
        split_evenly = {"10": -0.6931, "0": -0.6931}
        value = ("10", split_evenly) if json.loads(token) == " Austin" else ("0", {"0": 0.0})
        pieces += [(i, {i: 0.0}), ("\t", {"\t": 0.0}), value, ("\n", {"\n": 0.0})]
    return pieces


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with serve(ChatServer(knows_austin)) as running:
        yield running


def config(server: ChatServer, **overrides: object) -> LLMConfig:
    settings: dict[str, object] = {
        "base_url": server.url,
        "model": "scripted",
        "api_key": "right-key",
        "backoff_s": 0.01,
    }
    return LLMConfig(**{**settings, **overrides})  # type: ignore[arg-type]


def test_the_llm_explains_simulates_and_judges_a_feature_end_to_end(server: ChatServer) -> None:
    result = explain_llm(AUSTIN, LLM(config(server)))
    assert result is not None
    assert result.text == "the word Austin"
    assert (result.method, result.model) == ("llm", "scripted")
    scores = result.scores_dict()
    assert scores["simulation"]["value"] == pytest.approx(1.0)
    assert scores["simulation"]["judge"] == "scripted"
    assert scores["detection"]["value"] == 1.0
    assert scores["fuzzing"]["value"] == 1.0
    # One explanation, one simulation per scored example, one detection and one fuzzing call.
    calls = 1 + len(split(AUSTIN).scored) + 2
    assert result.usage == {
        "requests": calls,
        "prompt_tokens": calls * PROMPT_TOKENS,
        "completion_tokens": calls * COMPLETION_TOKENS,
    }
    assert result.details == {"simulation_values": "parsed"}


def test_the_explainer_prompt_marks_activations_and_never_shows_held_out_examples(
    server: ChatServer,
) -> None:
    explain_llm(AUSTIN, LLM(config(server)))
    prompt = server.requests[0]["messages"][1]["content"]
    assert "<< Austin>>" in prompt
    assert '" Austin": 10' in prompt
    for example in split(AUSTIN).held_out:
        assert "".join(example.tokens) not in prompt


def test_simulation_uses_the_expected_value_of_the_logprobs_when_the_endpoint_returns_them() -> (
    None
):
    with serve(ChatServer(hedging)) as running:
        llm = LLM(config(running))
        judge = roles.LLMJudge(llm, "the word Austin", usage=Usage())
        example = split(AUSTIN).held_out[0]
        predicted = judge.simulate([example])[0]
    assert running.requests[0]["logprobs"] is True
    assert judge.used_logprobs
    assert predicted == [
        pytest.approx(5.0, abs=1e-3) if t == " Austin" else 0.0 for t in example.tokens
    ]


def test_server_errors_are_retried_with_backoff() -> None:
    with serve(ChatServer(knows_austin, fail_first=2)) as running:
        usage = Usage()
        answer = LLM(config(running)).ask("hello", usage=usage, system=roles.EXPLAIN_SYSTEM)
    assert "Austin" in answer.text
    assert len(running.requests) == 3
    assert usage.requests == 1  # only answers count their tokens


def test_a_server_that_keeps_failing_ends_with_a_readable_message() -> None:
    failing = ChatServer(knows_austin, fail_first=99)
    with (
        serve(failing) as running,
        pytest.raises(LLMError, match=r"answered HTTP 500 \(4 tries\)") as failure,
    ):
        explain_llm(AUSTIN, LLM(config(running)))
    assert failure.value.fatal
    assert len(running.requests) == 4


def test_a_bad_key_is_refused_with_a_message_that_never_shows_a_key(
    server: ChatServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LLMError, match="refused the API key") as failure:
        explain_llm(AUSTIN, LLM(config(server, api_key="sk-wrong-secret")))
    assert failure.value.fatal
    assert "sk-wrong-secret" not in str(failure.value)
    assert "sk-wrong-secret" not in caplog.text
    assert "sk-wrong-secret" not in repr(config(server, api_key="sk-wrong-secret"))


def test_an_unreachable_endpoint_ends_with_a_readable_message() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = LLMConfig(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", max_attempts=2, backoff_s=0.01
    )
    with pytest.raises(LLMError, match=r"could not reach .* \(2 tries\): is it running") as failure:
        explain_llm(AUSTIN, LLM(unreachable))
    assert failure.value.fatal


def test_a_wrong_model_name_says_which_setting_to_check(server: ChatServer) -> None:
    with pytest.raises(LLMError, match="EXPLAINER_BASE_URL"):
        explain_llm(AUSTIN, LLM(config(server, base_url=server.url.removesuffix("/v1"))))


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("", "held no explanation"),
        ("I cannot tell.", "held no '<index>"),
        ("Explanation: Austin\n[1, 0", "not a JSON list"),
    ],
)
def test_malformed_answers_fail_only_the_feature_with_a_readable_message(
    answer: str, message: str
) -> None:
    def script(messages: list[dict[str, str]]) -> str | Pieces:
        system = messages[0]["content"]
        if message.startswith("held no '") and system == roles.SIMULATE_SYSTEM:
            return answer
        if message == "not a JSON list" and system == roles.JUDGE_SYSTEM:
            return answer
        if message == "held no explanation" and system == roles.EXPLAIN_SYSTEM:
            return answer
        return knows_austin(messages)

    with serve(ChatServer(script)) as running, pytest.raises(LLMError, match=message) as failure:
        explain_llm(AUSTIN, LLM(config(running)))
    assert not failure.value.fatal


def test_requests_in_flight_never_exceed_the_concurrency_limit() -> None:
    with serve(ChatServer(knows_austin, delay_s=0.05)) as running:
        llm = LLM(config(running, concurrency=2))
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda _: explain_llm(AUSTIN, llm, scorers=()), range(8)))
    assert len(running.requests) == 8
    assert running.max_in_flight <= 2
