"""`RemoteEngine` against a real loopback HTTP server (tests/scripted_backend.py).

The SSE parsing, the request it sends, and every failure path: each ends in an empty
result with `backend_error` and a `last_error`, within the time budget, never a hang.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scripted_backend import ScriptedBackend

from completion.engines.interface import GenerationParams, Samples
from completion.engines.remote import RemoteEngine, RemoteOptions, parse_backend_url
from completion.generate import generate
from completion.models.store import InstalledModel, ModelError
from completion.stops import RULE, StopReason

pytestmark = pytest.mark.backend

PARAMS = GenerationParams(max_new_tokens=16, time_budget_s=5.0)
KEY = "sk-team-7f3a9c"


@pytest.fixture
def backend() -> Iterator[ScriptedBackend]:
    server = ScriptedBackend()
    yield server
    server.close()


def engine_at(installed: InstalledModel, url: str, **kw: object) -> RemoteEngine:
    return RemoteEngine(installed, RemoteOptions(url, **kw))  # type: ignore[arg-type]


def run(engine: RemoteEngine, params: GenerationParams = PARAMS, **kw: object) -> tuple[str, str]:
    """(text, stop reason) of one stream, read to its end."""
    stream = engine.stream(engine.encode("def add(a, b):\n    return "), params, **kw)  # type: ignore[arg-type]
    ids = list(stream)
    stream.close()
    return engine.decode(ids), stream.reason


def test_backend_urls() -> None:
    assert parse_backend_url("http://127.0.0.1:8080").path == "/v1/completions"
    assert parse_backend_url("http://h:1/v1/").path == "/v1/completions"
    assert parse_backend_url("https://team.example/llm").path == "/llm/v1/completions"
    assert parse_backend_url("https://team.example").scheme == "https"
    for bad in ("127.0.0.1:8080", "ftp://h", "http://", "http://h:99999"):
        with pytest.raises(ValueError, match=f"backend {re.escape(repr(bad))} (is not|has a bad)"):
            parse_backend_url(bad)


def test_a_bad_url_is_a_model_error(tiny_model: InstalledModel) -> None:
    with pytest.raises(ModelError, match="not an http"):
        engine_at(tiny_model, "localhost:8080")


def test_streamed_text_becomes_local_token_ids(
    tiny_model: InstalledModel, backend: ScriptedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deltas come back as ids of the family's tokenizer; the request is the family's."""
    monkeypatch.setenv("TEAM_KEY", "s3cret")
    engine = engine_at(tiny_model, backend.url, api_key_env="TEAM_KEY", model="qwen")
    assert run(engine) == ("a + b", StopReason.END_TOKEN)
    body, headers = backend.requests[0], backend.headers[0]
    assert body["stream"] is True
    assert body["max_tokens"] == 16
    assert body["temperature"] == 0.0
    assert body["model"] == "qwen"
    assert "<|endoftext|>" in body["stop"]
    assert "<|fim_prefix|>" in body["stop"]
    assert body["prompt"] == "def add(a, b):\n    return "
    assert headers["Authorization"] == "Bearer s3cret"
    assert engine.last_error is None


def test_the_prompt_keeps_the_fim_markers(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    engine = engine_at(tiny_model, backend.url)
    fim = engine.fim
    assert fim is not None
    ids = [engine.token_id(fim.prefix), engine.token_id(fim.suffix)]
    ids += [*engine.encode("\n"), engine.token_id(fim.middle), *engine.encode("x = ")]
    stream = engine.stream([int(i or 0) for i in ids], PARAMS)
    list(stream)
    assert backend.requests[0]["prompt"] == "<|fim_prefix|><|fim_suffix|>\n<|fim_middle|>x = "


def test_no_key_is_sent_without_the_variable(
    tiny_model: InstalledModel, backend: ScriptedBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEAM_KEY", raising=False)
    run(engine_at(tiny_model, backend.url, api_key_env="TEAM_KEY"))
    assert "Authorization" not in backend.headers[0]


def test_length_finish_and_a_json_answer(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    engine = engine_at(tiny_model, backend.url)
    backend.finish_reason = "length"
    assert run(engine) == ("a + b", StopReason.MAX_TOKENS)
    backend.mode = "json"  # a server that ignores `stream`
    assert run(engine) == ("a + b", StopReason.END_TOKEN)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("garbage", "not JSON"),
        ("shape", "no choices"),
        ("http500", "HTTP 500"),
        ("cut", "ended before [DONE]"),
    ],
)
def test_a_broken_answer_is_an_empty_result(
    tiny_model: InstalledModel, backend: ScriptedBackend, mode: str, message: str
) -> None:
    backend.mode = mode
    engine = engine_at(tiny_model, backend.url)
    text, reason = run(engine)
    assert reason == StopReason.BACKEND_ERROR
    assert mode == "cut" or text == ""  # a cut stream keeps what came before the cut
    assert engine.last_error is not None
    assert message in engine.last_error
    out = generate(engine, engine.encode("x = "), PARAMS, lambda _t: None)
    assert (out.text, out.stop_reason) == ("", StopReason.BACKEND_ERROR)  # the pipeline's view
    backend.mode = "sse"  # the server is fine again: so is the engine
    assert run(engine) == ("a + b", StopReason.END_TOKEN)
    assert engine.last_error is None


def test_a_server_that_is_down(tiny_model: InstalledModel) -> None:
    gone = ScriptedBackend()
    gone.close()  # the port is free: connections are refused
    engine = engine_at(tiny_model, gone.url)
    started = time.monotonic()
    assert run(engine) == ("", StopReason.BACKEND_ERROR)
    assert time.monotonic() - started < 2
    assert "refused" in (engine.last_error or "")


def test_silence_ends_at_the_time_budget_and_the_server_sees_the_close(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    backend.mode = "silent"
    engine = engine_at(tiny_model, backend.url)
    started = time.monotonic()
    text, reason = run(engine, GenerationParams(max_new_tokens=16, time_budget_s=0.3))
    assert (text, reason) == ("", StopReason.TIME_BUDGET)
    assert time.monotonic() - started < 1.0
    assert backend.closed_early.wait(2), "the connection stayed open after the budget"


def test_a_cancel_before_the_first_byte_returns_at_once(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    backend.mode = "silent"
    engine = engine_at(tiny_model, backend.url)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    text, reason = run(engine, GenerationParams(time_budget_s=None), cancel=cancel)
    assert (text, reason) == ("", StopReason.CANCELLED)
    assert time.monotonic() - started < 0.6
    assert backend.closed_early.wait(2)
    assert engine.last_error is None  # a cancel is no failure


def test_the_stop_rule_closes_the_connection(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    """An endless stream: the single-line rule cuts it, and the server sees the socket go."""
    backend.mode, backend.pieces, backend.delay_s = "endless", ("x\n",), 0.02
    engine = engine_at(tiny_model, backend.url)
    params = GenerationParams(max_new_tokens=500, time_budget_s=10.0)
    started = time.monotonic()
    out = generate(
        engine, engine.encode("y = "), params, lambda t: t.find("\n") if "\n" in t else None
    )
    assert (out.text, out.stop_reason) == ("x", RULE)
    assert backend.closed_early.wait(2), "the server kept streaming after the stop rule"
    assert backend.closed_at is not None
    assert backend.closed_at - started < 1.0


def test_sample_uses_n_choices_or_one_request_each(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    params = GenerationParams(max_new_tokens=16, time_budget_s=5.0, temperature=0.8, seed=3)
    engine = engine_at(tiny_model, backend.url)
    backend.mode = "choices"  # answers n choices, as vLLM does
    samples = engine.sample(engine.encode("x = "), params, 3)
    assert [h.text for h in samples.hypotheses] == ["a + b"] * 3
    assert len(backend.requests) == 1
    assert backend.requests[0]["n"] == 3
    backend.mode = "sse"  # one choice whatever n says, as llama.cpp does
    samples = engine.sample(engine.encode("x = "), params, 3)
    assert [h.text for h in samples.hypotheses] == ["a + b"] * 3
    assert len(backend.requests) == 1 + 3
    assert samples.hypotheses[0].reason == StopReason.END_TOKEN


def test_sample_with_a_stop_rule_and_a_failure(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    params = GenerationParams(max_new_tokens=16, time_budget_s=5.0, temperature=0.8)
    engine = engine_at(tiny_model, backend.url)
    samples = engine.sample(
        engine.encode("x = "), params, 2, stop_rule=lambda t: t.find("+") if "+" in t else None
    )
    assert [h.text for h in samples.hypotheses] == ["a "] * 2
    backend.mode = "http500"
    samples = engine.sample(engine.encode("x = "), params, 2)
    assert [(h.text, h.reason) for h in samples.hypotheses] == [("", StopReason.BACKEND_ERROR)] * 2


def test_open_engine_and_compare_choose_the_engine(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    """The one factory: a backend URL gives a RemoteEngine (also for an eval compare entrant)."""
    from completion.engines.choose import open_engine
    from completion.engines.ct2 import CT2Engine
    from eval.compare import Entrant, engine_factory

    settings, load = engine_factory(Entrant("b", model=str(tiny_model.path), backend=backend.url))
    assert settings == {"model": "tiny", "backend": backend.url}
    engine = load()
    assert isinstance(engine, RemoteEngine)
    assert run(engine)[0] == "a + b"
    assert isinstance(open_engine(tiny_model), CT2Engine)


def test_offpilot_complete_takes_a_backend(
    tiny_model: InstalledModel, backend: ScriptedBackend, tmp_path: Path
) -> None:
    """`offpilot complete --backend URL` opens its engine like the server: the server answers."""
    src = tmp_path / "m.py"
    src.write_text("def add(a, b):\n    return \n")
    cli = [sys.executable, "-m", "offpilot.cli", "complete", str(src), "1", "11"]
    out = subprocess.run(
        [*cli, "--model", str(tiny_model.path), "--backend", backend.url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "a + b\n"
    assert len(backend.requests) == 1
    bad = subprocess.run(
        [*cli, "--model", str(tiny_model.path), "--backend", "localhost:8080"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "offpilot:" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("ending", ["\r\n", "\n", "\r", " \t\n"])
def test_a_key_ending_in_a_line_end_is_trimmed_and_never_shown(
    tiny_model: InstalledModel,
    backend: ScriptedBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    ending: str,
) -> None:
    """A key read from a (CRLF) file: http.client refused it and quoted it in every error."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEAM_KEY", KEY + ending)
    engine = engine_at(tiny_model, backend.url, api_key_env="TEAM_KEY")
    assert run(engine) == ("a + b", StopReason.END_TOKEN)
    assert backend.headers[0]["Authorization"] == f"Bearer {KEY}"
    assert engine.last_error is None
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    "bad", [KEY[:6] + "\r\n" + KEY[6:], KEY + " x", KEY + "\u00e9", KEY + "\x1b"]
)
def test_a_key_no_header_can_carry_is_refused_by_its_name(
    tiny_model: InstalledModel,
    backend: ScriptedBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    bad: str,
) -> None:
    """Refused when read (a model error the status shows), naming the variable, not the value."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEAM_KEY", bad)
    with pytest.raises(ModelError, match=r"\$TEAM_KEY") as info:
        engine_at(tiny_model, backend.url, api_key_env="TEAM_KEY")
    assert KEY[6:] not in str(info.value)
    assert KEY[6:] not in caplog.text
    assert backend.requests == []


def test_no_error_text_shows_the_key(
    tiny_model: InstalledModel,
    backend: ScriptedBackend,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever quotes the key (a proxy's 401, http.client's refusal) is masked in the log and
    in `last_error`."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("TEAM_KEY", KEY)
    engine = engine_at(tiny_model, backend.url, api_key_env="TEAM_KEY")
    backend.mode = "unauthorized"  # its body quotes the Authorization header back
    assert run(engine) == ("", StopReason.BACKEND_ERROR)
    assert engine.last_error is not None
    assert "HTTP 401" in engine.last_error
    assert KEY not in engine.last_error
    assert "***" in engine.last_error
    # the header http.client refused when a key ended in CR LF: its error quotes the value
    engine._headers["Authorization"] = f"Bearer {KEY}\r\n"
    assert run(engine) == ("", StopReason.BACKEND_ERROR)
    assert "Invalid header value" in engine.last_error
    assert KEY not in engine.last_error
    assert "Invalid header value" in caplog.text
    assert KEY not in caplog.text


@pytest.mark.parametrize("ending", ["budget", "cancel"])
def test_sample_ends_while_the_server_streams_a_finished_choice(
    tiny_model: InstalledModel, backend: ScriptedBackend, ending: str
) -> None:
    """One choice whatever `n` says (llama.cpp), finished by the stop rule, streamed on and on:
    the budget or a cancel still ends `sample`, and the server sees the connection go."""
    backend.mode, backend.pieces, backend.delay_s = "endless", ("x\n",), 0.002
    # a poll longer than the test: the queue is never empty while the server floods it, so
    # only a check on every item ends the request
    engine = engine_at(tiny_model, backend.url, poll_s=5.0)
    budget = 0.3 if ending == "budget" else None
    params = GenerationParams(max_new_tokens=100_000, time_budget_s=budget, temperature=0.8)
    cancel = threading.Event()
    if ending == "cancel":
        threading.Timer(0.3, cancel.set).start()
    done: list[Samples] = []

    def sample() -> None:
        rule = lambda t: t.find("\n") if "\n" in t else None  # noqa: E731
        done.append(engine.sample(engine.encode("x = "), params, 2, rule, cancel))

    started = time.monotonic()
    worker = threading.Thread(target=sample, daemon=True)
    worker.start()
    worker.join(4)
    assert done, f"sample() still reading {time.monotonic() - started:.1f} s in"
    assert time.monotonic() - started < 1.5
    assert backend.closed_early.wait(2), "the connection stayed open"
    first, second = done[0].hypotheses
    assert (first.text, first.reason) == ("x", RULE)
    expected = StopReason.TIME_BUDGET if ending == "budget" else StopReason.CANCELLED
    assert (second.text, second.reason) == ("", expected)
    assert len(backend.requests) == 1  # the missing choice is not asked for past the end
    assert engine.last_error is None  # the server did answer


def test_a_server_that_never_answers_is_reported(
    tiny_model: InstalledModel, backend: ScriptedBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """Accepts the connection, sends nothing: a failure in the log and `last_error`, like any
    other; a server that answered (headers) but is slow is not one."""
    caplog.set_level(logging.WARNING)
    backend.mode = "silent"
    engine = engine_at(tiny_model, backend.url)
    params = GenerationParams(max_new_tokens=16, time_budget_s=0.3)
    assert run(engine, params) == ("", StopReason.TIME_BUDGET)
    assert engine.last_error is not None
    assert "sent nothing" in engine.last_error
    assert "sent nothing" in caplog.text
    samples = engine.sample(engine.encode("x = "), params, 1)
    assert samples.hypotheses[0].reason == StopReason.TIME_BUDGET
    assert engine.last_error is not None
    assert "sent nothing" in engine.last_error
    backend.mode, backend.delay_s = "sse", 2.0  # headers at once, the first text too late
    assert run(engine, params) == ("", StopReason.TIME_BUDGET)
    assert engine.last_error is None


@pytest.mark.parametrize("shape", ["legacy", "content"])
def test_log_probs_come_back_in_either_shape(tiny_model: InstalledModel, shape: str) -> None:
    """Each chunk's log-prob lands on its first local token (the gate's evidence)."""
    server = ScriptedBackend(logprobs=shape)
    try:
        engine = engine_at(tiny_model, server.url)
        stream = engine.stream(engine.encode("x = "), PARAMS)
        ids = list(stream)
        stream.close()
        assert server.requests[0]["logprobs"] == 1
        assert engine.decode(ids) == "a + b"
        assert len(stream.log_probs) == len(ids)
        assert sum(stream.log_probs) == pytest.approx(-0.75)  # three pieces
        assert stream.log_probs[0] == -0.25
    finally:
        server.close()


def test_a_server_without_log_probs_gives_unknown_ones(
    tiny_model: InstalledModel, backend: ScriptedBackend
) -> None:
    """Ollama sends none: the answer stands, unscored (NaN), and the gate shows it."""
    engine = engine_at(tiny_model, backend.url)
    stream = engine.stream(engine.encode("x = "), PARAMS)
    ids = list(stream)
    stream.close()
    assert engine.decode(ids) == "a + b"
    assert stream.log_probs
    assert math.isnan(stream.log_probs[0])
