"""Any OpenAI-compatible chat-completions endpoint as explainer, simulator and judge.

vLLM, Ollama, llama.cpp's server and OpenAI all speak the protocol the ``openai`` client sends.
Calls share one concurrency limit (a semaphore, so many features explained on a thread pool never
have more than ``concurrency`` requests in flight), retry connection errors, timeouts, rate
limits and server errors with exponential backoff, and add their token usage to the ``Usage`` of
the explanation they serve. The API key goes to the client and nowhere else: it is kept out of
``repr``, and error messages are built from status codes and scrubbed of it.

Prompts follow OpenAI's automated interpretability: examples are written with the tokens the
feature fires on marked ``<<like this>>`` and followed by their activations on a 0–10 scale
(10 = the feature's largest activation among the examples shown).
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from autointerp.examples import Example

log = logging.getLogger(__name__)

MAX_EXPLANATION_CHARS = 500


@dataclass(frozen=True)
class LLMConfig:
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)
    concurrency: int = 4  # requests in flight at once, over all features
    timeout_s: float = 60.0  # one request
    max_attempts: int = 4  # tries of one request before its error ends the job
    backoff_s: float = 1.0  # the wait before the second try; doubled for each later one
    max_tokens: int = 600  # completion tokens of one answer


@dataclass
class Usage:
    """Tokens spent for one explanation: writing it, and every simulation and judgement."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, prompt_tokens: int, completion_tokens: int) -> None:
        with self._lock:
            self.requests += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
        }


class LLMError(Exception):
    """A readable reason a call failed. ``fatal``: no later call will do better (the endpoint is
    unreachable, refuses the key or lacks the model), so the job stops; otherwise (an answer in
    the wrong shape) only this feature is skipped."""

    def __init__(self, message: str, *, fatal: bool) -> None:
        super().__init__(message)
        self.fatal = fatal


@dataclass(frozen=True)
class Answer:
    text: str
    # Per generated token: (token, {alternative: logprob}), when the endpoint returned logprobs.
    logprobs: list[tuple[str, dict[str, float]]] | None = None


_RETRIED = (
    openai.APIConnectionError,  # also APITimeoutError
    openai.RateLimitError,
    openai.InternalServerError,
)


class LLM:
    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self._client = openai.OpenAI(
            base_url=config.base_url,
            api_key=config.api_key or "none",  # local servers take any key; the client wants one
            timeout=config.timeout_s,
            max_retries=0,  # retried here, with our backoff and messages
        )
        self._slots = threading.BoundedSemaphore(max(1, config.concurrency))
        self._logprobs_refused = False

    def _scrub(self, text: str) -> str:
        key = self.config.api_key
        return text.replace(key, "***") if key else text

    def _describe(self, exc: Exception) -> LLMError:
        where = f"the explainer endpoint {self.config.base_url}"
        if isinstance(exc, openai.AuthenticationError):
            return LLMError(
                f"{where} refused the API key (HTTP 401): check EXPLAINER_API_KEY", fatal=True
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return LLMError(f"{where} denied access (HTTP 403)", fatal=True)
        if isinstance(exc, openai.NotFoundError):
            return LLMError(
                f"{where} has no model {self.config.model!r} or no chat-completions route "
                "(HTTP 404): check EXPLAINER_MODEL and EXPLAINER_BASE_URL",
                fatal=True,
            )
        if isinstance(exc, openai.APITimeoutError):
            return LLMError(
                f"{where} did not answer within {self.config.timeout_s:g} s "
                f"({self.config.max_attempts} tries)",
                fatal=True,
            )
        if isinstance(exc, openai.APIConnectionError):
            return LLMError(
                f"could not reach {where} ({self.config.max_attempts} tries): is it running?",
                fatal=True,
            )
        if isinstance(exc, openai.APIStatusError):
            return LLMError(
                f"{where} answered HTTP {exc.status_code} ({self.config.max_attempts} tries): "
                + self._scrub(str(exc.message))[:300],
                fatal=True,
            )
        return LLMError(f"{where} failed: {type(exc).__name__}", fatal=True)

    def ask(self, prompt: str, *, usage: Usage, system: str, logprobs: bool = False) -> Answer:
        """One chat completion (temperature 0), retried with backoff; ``LLMError`` if it fails."""
        want_logprobs = logprobs and not self._logprobs_refused
        messages: list[Any] = [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt},
        ]
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                with self._slots:
                    extra: dict[str, Any] = (
                        {"logprobs": True, "top_logprobs": 5} if want_logprobs else {}
                    )
                    response = self._client.chat.completions.create(
                        model=self.config.model,
                        messages=messages,
                        temperature=0,
                        max_tokens=self.config.max_tokens,
                        **extra,
                    )
            except openai.BadRequestError as exc:
                if want_logprobs:
                    # Some servers refuse logprobs: ask again without, and stop asking.
                    self._logprobs_refused, want_logprobs = True, False
                    continue
                raise LLMError(
                    "the explainer endpoint rejected the request (HTTP 400): "
                    + self._scrub(str(exc.message))[:300],
                    fatal=True,
                ) from None
            except _RETRIED as exc:
                if attempt == self.config.max_attempts:
                    raise self._describe(exc) from None
                wait = self.config.backoff_s * 2 ** (attempt - 1)
                log.info(
                    "explainer call failed (%s); retry %d in %.1f s",
                    type(exc).__name__,
                    attempt,
                    wait,
                )
                time.sleep(wait)
                continue
            except openai.APIError as exc:
                raise self._describe(exc) from None
            return self._answer(response, usage)
        raise LLMError("the explainer endpoint refused every request", fatal=True)

    def _answer(self, response: Any, usage: Usage) -> Answer:
        if response.usage is not None:
            usage.add(response.usage.prompt_tokens or 0, response.usage.completion_tokens or 0)
        else:
            usage.add(0, 0)
        if not getattr(response, "choices", None):
            raise LLMError("the explainer endpoint answered with no choices", fatal=False)
        choice = response.choices[0]
        text = choice.message.content or ""
        content = getattr(choice.logprobs, "content", None) if choice.logprobs else None
        logprobs = None
        if content:
            logprobs = [
                (
                    t.token,
                    {a.token: a.logprob for a in (t.top_logprobs or [])} or {t.token: t.logprob},
                )
                for t in content
            ]
        return Answer(text, logprobs)


# ---------------------------------------------------------------------------------------------
# Prompts and their answers


def _scale(examples: Sequence[Example]) -> float:
    return max((e.max_value for e in examples), default=0.0) or 1.0


def _level(value: float, top: float) -> int:
    return max(0, min(10, round(10 * value / top)))


def render(example: Example, marked: set[int] | frozenset[int]) -> str:
    return "".join(f"<<{t}>>" if i in marked else t for i, t in enumerate(example.tokens))


EXPLAIN_SYSTEM = (
    "You study features of a neural network. A feature fires on some tokens of a text. You see "
    "texts with the tokens the feature fires on marked <<like this>>, followed by each marked "
    "token's activation on a 0-10 scale. Say in one short sentence what makes the feature fire: "
    "which tokens, and in which context. Answer with one line starting with 'Explanation:'."
)


def explain_prompt(examples: Sequence[Example]) -> str:
    top = _scale(examples)
    parts = []
    for n, example in enumerate(examples, start=1):
        firing = {i for i, v in enumerate(example.values) if _level(v, top) > 0}
        levels = ", ".join(
            f"{json.dumps(example.tokens[i])}: {_level(example.values[i], top)}"
            for i in sorted(firing)
        )
        parts.append(f"Text {n}: {render(example, firing)}\nActivations: {levels or 'none'}")
    return "\n\n".join(parts)


def parse_explanation(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    marked = [line for line in lines if line.lower().startswith("explanation:")]
    found = marked[-1].split(":", 1)[1] if marked else (lines[-1] if lines else "")
    found = found.strip().strip('"').strip()
    if not found:
        raise LLMError("the explainer's answer held no explanation", fatal=False)
    return found[:MAX_EXPLANATION_CHARS]


SIMULATE_SYSTEM = (
    "You predict a neural network feature's activation on each token of a text from an "
    "explanation of the feature. Activations are integers from 0 (silent) to 10 (strongest); "
    "most tokens are 0. Answer with one line per token, '<index>\\t<activation>', and nothing "
    "else."
)


def simulate_prompt(explanation: str, example: Example) -> str:
    rows = "\n".join(f"{i}\t{json.dumps(t)}" for i, t in enumerate(example.tokens))
    return f"Explanation of the feature: {explanation}\n\nTokens (index, token):\n{rows}"


_ROW = re.compile(r"^\s*(\d+)\s*[\t:,|]\s*(?:\"[^\"]*\"\s*[\t:,|]\s*)?(\d+(?:\.\d+)?)")


def parse_activations(text: str, n_tokens: int) -> list[float]:
    values = [0.0] * n_tokens
    found = 0
    for line in text.splitlines():
        match = _ROW.match(line)
        if match and int(match.group(1)) < n_tokens:
            values[int(match.group(1))] = min(10.0, float(match.group(2)))
            found += 1
    if not found:
        raise LLMError("the simulator's answer held no '<index>\\t<activation>' lines", fatal=False)
    return values


def expected_activations(
    logprobs: list[tuple[str, dict[str, float]]], n_tokens: int
) -> dict[int, float]:
    """Where a value follows '<index>\\t' in the answer: the expected value over the
    alternatives 0..10 the endpoint's logprobs give for that token (OpenAI's method)."""
    out: dict[int, float] = {}
    line = ""
    for token, alternatives in logprobs:
        head = re.fullmatch(r"\s*(\d+)\t", line)
        if head and token.strip().isdigit() and int(head.group(1)) < n_tokens:
            weights = {
                int(a.strip()): math.exp(lp)
                for a, lp in alternatives.items()
                if a.strip().isdigit() and int(a.strip()) <= 10
            }
            total = sum(weights.values())
            if total > 0:
                out[int(head.group(1))] = sum(v * w for v, w in weights.items()) / total
        line = (line + token).rsplit("\n", 1)[-1]
    return out


JUDGE_SYSTEM = (
    "You check an explanation of a neural network feature against texts. Answer with a JSON "
    "list of 0s and 1s, one per numbered text, in order, and nothing else."
)


def detect_prompt(explanation: str, examples: Sequence[Example]) -> str:
    texts = "\n".join(f"{n}. {''.join(e.tokens)}" for n, e in enumerate(examples, start=1))
    return (
        f"Explanation of the feature: {explanation}\n\nFor each text, answer 1 if the feature "
        f"fires somewhere in it, 0 if it does not.\n\n{texts}"
    )


def fuzz_prompt(explanation: str, items: Sequence[tuple[tuple[str, ...], frozenset[int]]]) -> str:
    texts = "\n".join(
        f"{n}. {render(Example(tokens, (0.0,) * len(tokens)), marked)}"
        for n, (tokens, marked) in enumerate(items, start=1)
    )
    return (
        f"Explanation of the feature: {explanation}\n\nIn each text some tokens are marked "
        "<<like this>>. Answer 1 if the marked tokens are ones the explanation says the feature "
        f"fires on, 0 if they are not.\n\n{texts}"
    )


def parse_verdicts(text: str, n: int) -> list[bool]:
    match = re.search(r"\[[^\[\]]*\]", text)
    try:
        verdicts = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        verdicts = None
    if not isinstance(verdicts, list) or len(verdicts) != n:
        raise LLMError(f"the judge's answer was not a JSON list of {n} 0s and 1s", fatal=False)
    return [v in (1, True, "1") for v in verdicts]


# ---------------------------------------------------------------------------------------------
# The roles


def explain(llm: LLM, examples: Sequence[Example], *, usage: Usage) -> str:
    answer = llm.ask(explain_prompt(examples), usage=usage, system=EXPLAIN_SYSTEM)
    return parse_explanation(answer.text)


class LLMJudge:
    """The LLM as simulator and judge of one explanation (``scoring.Judge``)."""

    def __init__(self, llm: LLM, explanation: str, *, usage: Usage) -> None:
        self.llm, self.explanation, self.usage = llm, explanation, usage
        self.model = llm.config.model
        self.used_logprobs = False

    def simulate(self, examples: Sequence[Example]) -> list[list[float]]:
        rows = []
        for example in examples:
            answer = self.llm.ask(
                simulate_prompt(self.explanation, example),
                usage=self.usage,
                system=SIMULATE_SYSTEM,
                logprobs=True,
            )
            values = parse_activations(answer.text, len(example.tokens))
            if answer.logprobs:
                expected = expected_activations(answer.logprobs, len(example.tokens))
                self.used_logprobs = self.used_logprobs or bool(expected)
                for i, value in expected.items():
                    values[i] = value
            rows.append(values)
        return rows

    def detect(self, examples: Sequence[Example]) -> list[bool]:
        prompt = detect_prompt(self.explanation, examples)
        answer = self.llm.ask(prompt, usage=self.usage, system=JUDGE_SYSTEM)
        return parse_verdicts(answer.text, len(examples))

    def fuzz(self, items: Sequence[tuple[tuple[str, ...], frozenset[int]]]) -> list[bool]:
        answer = self.llm.ask(
            fuzz_prompt(self.explanation, items), usage=self.usage, system=JUDGE_SYSTEM
        )
        return parse_verdicts(answer.text, len(items))
