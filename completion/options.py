"""The pipeline's options: one defaulted dataclass, each stage's switches nested in it.

Also the `--set name=value,...` syntax the benchmark uses to change them (`with_spec`), and
the names it accepts (`SPEC_NAMES`, `POST_STAGES`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from completion import gate
from completion.context import Context
from completion.engines.interface import DEFAULT_TIME_BUDGET_S, GenerationParams
from completion.models.specs import PromptBudget
from completion.postprocess import PostOptions
from completion.stops import StopRule, stop_rule_for
from completion.trigger import Mode, TriggerOptions


@dataclass(frozen=True)
class CompletionOptions:
    """Tunable pipeline settings, all defaulted; each stage's switches in its own options."""

    max_new_tokens: int = GenerationParams.max_new_tokens
    time_budget_s: float = DEFAULT_TIME_BUDGET_S
    # The prompt windows; None: the model family's (`Family.windows`, see `budget`).
    prefix_tokens: int | None = None
    suffix_tokens: int | None = None
    temperature: float = GenerationParams.temperature
    seed: int | None = None
    trigger: TriggerOptions = TriggerOptions()
    post: PostOptions = PostOptions()
    # Let the engine cache the model state of the prompt's head (the suffix and the lines
    # above the checkpoint). It pays: typing replay, pause p50 964 -> 328 ms, prompt tokens
    # computed per model answer p50 142 -> 19 (docs/latency.md). It costs ~170 KB a token,
    # bounded by `EngineOptions.prompt_cache_tokens` (about 260 MB) and freed by a reload.
    prompt_cache: bool = True
    multiline_max_new_tokens: int = 96  # token cap of a multi-line completion
    block_stop: bool = True  # multi-line: stop streaming at the end of the block
    # Context from other files, as comment blocks at the top of the prompt (crossfile.py).
    # Off by default: on click tasks that use imported names it did not help the 0.5B or the
    # 1.5B model (docs/quality.md, "Cross-file context"); the server's crossFile turns it on.
    crossfile: bool = False  # windows of other open documents like the lines above the cursor
    imports: bool = False  # definitions of the names imported from workspace files (Python)
    crossfile_share: float = 0.25  # their share of the context tokens (out of the prefix's)
    crossfile_ms: int = 25  # time budget of collecting them
    # Show or not (gate.py): `off`, or the operating point `quiet`, `balanced` or `eager`;
    # `gate_shift` moves its threshold (the server's, from the user's own accepts and
    # rejects). A block's first line is gated on its own as soon as it is written (it is
    # shown then, before the block is done), so a block the gate hides may leave its first
    # line shown: all-or-nothing would cost the early first line (docs/quality.md).
    gate: str = gate.DEFAULT_POINT
    gate_shift: float = 0.0

    def budget(self, windows: PromptBudget) -> PromptBudget:
        """The prompt windows: these options' where set, else the family's `windows`."""
        return PromptBudget(
            windows.prefix_tokens if self.prefix_tokens is None else self.prefix_tokens,
            windows.suffix_tokens if self.suffix_tokens is None else self.suffix_tokens,
        )

    def stop_rule(self, context: Context, mode: Mode) -> StopRule:
        """The streaming stop rule these switches give a completion of `mode`."""
        return stop_rule_for(
            context, mode, block_stop_on=self.block_stop, repeat_suffix=self.post.dedupe
        )

    def post_for(self, multiline: bool) -> PostOptions:
        """The post-processing switches for a single- or multi-line completion."""
        return dataclasses.replace(self.post, multiline=multiline)

    def with_spec(self, spec: str) -> CompletionOptions:
        """These options with a comma list of `name=value` applied, e.g. `dedupe=0,multiline=1`.

        Names are the fields of these options and of the nested stage options (`SPEC_NAMES`).
        For the benchmark's `--set` (docs/quality.md): an unknown name or a bad value raises
        ValueError, so that a typo never runs the baseline under an ablation's name.
        """
        changes: dict[str, dict[str, object]] = {}
        for item in filter(None, (i.strip() for i in spec.split(","))):
            key, sep, value = (p.strip() for p in item.partition("="))
            key = _SPEC_ALIASES.get(key, key)
            where = SPEC_NAMES.get(key)
            try:
                if not sep or where is None:
                    raise ValueError
                group, kind = where
                parsed = _parse_value(kind, value)
                if key == "gate":
                    parsed = gate.normalize_point(value)
                changes.setdefault(group, {})[key] = parsed
            except ValueError:
                known = ", ".join(sorted((*SPEC_NAMES, *_SPEC_ALIASES)))
                raise ValueError(
                    f"bad pipeline option {item!r}: expected name=value with a name of {known}"
                ) from None
        nested = {
            group: dataclasses.replace(getattr(self, group), **values)
            for group, values in changes.items()
            if group
        }
        return dataclasses.replace(self, **changes.get("", {}), **nested)  # type: ignore[arg-type]


def _parse_value(kind: str, value: str) -> object:
    """A `--set` value of a field annotated `kind`; ValueError when it does not fit."""
    if kind == "bool":
        if value.lower() in ("1", "true", "on", "yes"):
            return True
        if value.lower() in ("0", "false", "off", "no"):
            return False
        raise ValueError
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "str":
        return value
    if kind == "int | None":
        return int(value) if value else None
    raise ValueError


_NESTED = {"trigger": TriggerOptions, "post": PostOptions}
# `--set` name -> (the nested options holding it, "" for the top level; its annotation)
SPEC_NAMES: dict[str, tuple[str, str]] = {
    **{
        f.name: ("", str(f.type))
        for f in dataclasses.fields(CompletionOptions)
        if f.name not in _NESTED
    },
    **{
        f.name: (group, str(f.type))
        for group, kind in _NESTED.items()
        for f in dataclasses.fields(kind)
        if (group, f.name) != ("post", "multiline")  # set from the trigger's mode
    },
}
_SPEC_ALIASES = {"trigger": "mid_line_rule"}  # the stage's name in docs/quality.md's runs

# The switches that only post-processing reads: `offpilot eval repost` can switch them on a
# finished run's raw output without generating again.
POST_STAGES = tuple(name for name, (group, _) in SPEC_NAMES.items() if group == "post")
