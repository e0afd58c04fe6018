"""Prompt: the FIM order per model family, the token budget, the stable head, blank healing."""

from __future__ import annotations

from cursor import CURSOR, SOURCE

from completion.context import extract_context
from completion.engines.fake import FakeEngine
from completion.models.specs import QWEN2, FimOrder, fim_order
from completion.pipeline import CompletionRequest, complete
from completion.prompt import (
    CHECKPOINT_LINES,
    WINDOW_STEP_LINES,
    PromptBudget,
    build_prompt,
    fit_prefix,
    fit_suffix,
    strip_healed,
)


def test_prompt_puts_the_suffix_first_and_the_prefix_last() -> None:
    """The default family's order: the model continues the code above the cursor."""
    prompt = build_prompt(extract_context(SOURCE, CURSOR), FakeEngine())
    text = "".join(chr(i) for i in prompt.ids)
    # the blank before the cursor is left to the model (`heal_blanks`)
    assert text == f"\ue000\ue001{SOURCE[CURSOR:]}\ue002{SOURCE[: CURSOR - 1]}"


def test_prompt_is_psm_for_a_psm_family() -> None:
    prompt = build_prompt(extract_context(SOURCE, CURSOR), FakeEngine(order=FimOrder.PSM))
    text = "".join(chr(i) for i in prompt.ids)
    assert text == f"\ue000{SOURCE[: CURSOR - 1]}\ue001{SOURCE[CURSOR:]}\ue002"


def test_model_families_carry_their_prompt_order() -> None:
    assert QWEN2.fim is not None
    assert QWEN2.fim.order is FimOrder.SUFFIX_FIRST
    assert fim_order("qwen2") is FimOrder.SUFFIX_FIRST
    assert fim_order("gpt_bigcode") is FimOrder.PSM
    assert fim_order("unknown") is FimOrder.PSM


def test_prompt_budget_cuts_at_line_boundaries() -> None:
    engine = FakeEngine()  # one token per character
    prefix = "".join(f"line{i}\n" for i in range(100)) + "    return "
    kept = fit_prefix(engine, prefix, 40)
    assert kept.endswith("    return ")
    assert len(kept) <= 40
    assert kept.split("\n")[0].startswith("line")  # whole lines only
    assert fit_suffix(engine, "ab\ncd\nef\n", 6) == "ab\ncd\n"
    # a single line longer than the budget keeps the part nearest the cursor
    assert fit_prefix(engine, "z" * 500 + "END", 10).endswith("END")
    prompt = build_prompt(extract_context(prefix, len(prefix)), engine, PromptBudget(40, 10))
    # the head's lines fit the budget; the lines since the checkpoint (96) come on top
    assert prompt.static_len <= 3 + 10 + 40
    assert prompt.prefix.endswith("line95\nline96\nline97\nline98\nline99\n    return")
    assert len(prompt.ids) - prompt.static_len == len("line96\n") * 4 + len("    return")


def test_prompt_head_is_stable_while_typing_forward_within_a_chunk() -> None:
    """The head (suffix window, lines above the checkpoint) moves only every 8 lines."""
    engine = FakeEngine()
    above = "".join(f"x{i} = {i}\n" for i in range(CHECKPOINT_LINES))
    below = "\n\nprint(x0)\n"
    typed = ["", "y = 1", "y = 1\nz = ", "y = 1\nz = 2\n" * 3 + "w"]
    prompts = []
    for t in typed:
        text = above + t + below
        prompts.append(build_prompt(extract_context(text, len(above + t)), engine))
    heads = ["".join(map(chr, p.ids[: p.static_len])) for p in prompts]
    assert heads[0] == heads[1] == heads[2] == heads[3]
    assert heads[0] == f"\ue000\ue001{below}\ue002{above}"
    for p, t in zip(prompts, typed, strict=True):  # the rest is the lines since the checkpoint
        assert "".join(map(chr, p.ids[p.static_len :])) == t.rstrip(" ")
    later = above + "y = 1\n" * CHECKPOINT_LINES + "w"
    moved = build_prompt(extract_context(later + below, len(later)), engine)
    assert "".join(map(chr, moved.ids[: moved.static_len])) != heads[0]


def test_a_full_window_keeps_its_start_when_the_checkpoint_moves() -> None:
    """The old head stays the new head's start, so a cached common prefix is reused."""
    engine = FakeEngine()  # one token per character
    below = "\n\nprint(x0)\n"
    budget = PromptBudget(prefix_tokens=600, suffix_tokens=64)

    def head(n_lines: int) -> str:
        text = "".join(f"x{i:03} = {i:03}\n" for i in range(n_lines)) + "w"  # 12 chars a line
        prompt = build_prompt(extract_context(text + below, len(text)), engine, budget)
        return "".join(map(chr, prompt.ids[: prompt.static_len]))

    heads = {n: head(n) for n in range(80, 200, CHECKPOINT_LINES)}
    # the window's first line: what follows the middle marker
    starts = {n: int(h.split("\ue002")[1][1:4]) for n, h in heads.items()}
    assert all(s % WINDOW_STEP_LINES == 0 for s in starts.values())
    assert all(len(h) <= 3 + len(below) + 600 for h in heads.values())
    moves = list(zip(list(heads)[:-1], list(heads)[1:], strict=True))
    kept = [(a, b) for a, b in moves if starts[a] == starts[b]]
    assert len(kept) >= len(moves) // 2  # most checkpoint moves only add lines
    for a, b in kept:
        assert heads[b].startswith(heads[a])
    for a, b in moves:  # and a step forward keeps the window at least a step under the budget
        assert starts[b] - starts[a] in (0, WINDOW_STEP_LINES)
        assert len(heads[b]) > 3 + len(below) + 600 - 12 * (WINDOW_STEP_LINES + 1)


def test_blanks_before_the_cursor_are_healed() -> None:
    """The prompt leaves trailing blanks out; the model's output loses them again."""
    engine = FakeEngine()
    indented = "def f(x):\n    "
    prompt = build_prompt(extract_context(indented, len(indented)), engine)
    at_column_0 = build_prompt(extract_context("def f(x):\n", 10), engine)
    assert prompt.ids == at_column_0.ids
    assert prompt.healed == "    "
    engine = FakeEngine(default="    return x\n    y = 1\n")
    result = complete(engine, CompletionRequest(indented, len(indented)))
    assert result.text == "return x\n    y = 1"
    spaced = FakeEngine(default=" a + b\n")  # the model writes the space with the word
    doc = "def add(a, b):\n    return \n"
    assert complete(spaced, CompletionRequest(doc, doc.index("\n", 15))).text == "a + b"
    other = FakeEngine(default="(a + b)\n")  # no space: nothing to take off
    assert complete(other, CompletionRequest(doc, doc.index("\n", 15))).text == "(a + b)"
    assert strip_healed(" ", "  ") == ""
    assert strip_healed("\tx", " ") == "\tx"
