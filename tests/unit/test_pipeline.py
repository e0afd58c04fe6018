from cursor import CURSOR, SOURCE

from completion.fake_engine import FakeEngine
from completion.pipeline import CompletionOptions, CompletionRequest, complete
from completion.stops import RULE, StopReason
from completion.trigger import TriggerOptions


def test_complete_end_to_end_with_fake_engine() -> None:
    engine = FakeEngine(default="a + b\n\nprint(add(1, 2))\n")
    single = CompletionOptions(trigger=TriggerOptions(multiline=False))
    result = complete(engine, CompletionRequest(SOURCE, CURSOR), single)
    assert result.text == "a + b"
    assert result.stop_reason == RULE
    # the stream was closed at the first newline: the rest was never produced
    assert engine.produced_tokens <= len("a + b\n") + 1
    # as a block (the default at a line's end) it ends where the block does: the code below
    # repeats the suffix, so the stream stops there too
    block = complete(
        FakeEngine(default="a + b\n\nprint(add(1, 2))\n"), CompletionRequest(SOURCE, CURSOR)
    )
    assert (block.text, block.mode) == ("a + b", "multi")
    assert set(result.timings_ms) >= {"context", "prompt", "generate", "postprocess", "total"}


def test_token_cap_and_end_token() -> None:
    engine = FakeEngine(default="abcdefghij")
    single = CompletionOptions(trigger=TriggerOptions(multiline=False))
    # an empty file asks for a block: its own cap
    assert complete(engine, CompletionRequest("", 0), single).mode == "single"
    capped = complete(
        engine,
        CompletionRequest("", 0),
        CompletionOptions(trigger=TriggerOptions(multiline=False), max_new_tokens=3),
    )
    assert (capped.text, capped.stop_reason) == ("abc", StopReason.MAX_TOKENS)
    multi = CompletionOptions(multiline_max_new_tokens=4)
    assert complete(engine, CompletionRequest("", 0), multi).text == "abcd"
    ended = complete(engine, CompletionRequest("", 0), single)
    assert (ended.text, ended.stop_reason) == ("abcdefghij", StopReason.END_TOKEN)


def test_pipeline_passes_the_static_head_to_the_engine() -> None:
    engine = FakeEngine(default="a + b\n")
    complete(engine, CompletionRequest(SOURCE, CURSOR))  # on by default
    complete(engine, CompletionRequest(SOURCE, CURSOR), CompletionOptions(prompt_cache=False))
    # two lines above the cursor's: no checkpoint yet, the head is the markers and the suffix
    assert engine.static_lens == [3 + len(SOURCE[CURSOR:]), 0]
