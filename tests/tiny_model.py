"""Build a tiny random-weight Qwen2 checkpoint with a real BPE tokenizer, for fast tests."""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|im_end|>",
    "<|file_sep|>",
    "<|repo_name|>",
]

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "import os\nimport sys\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n",
    "for i in range(10):\n    print(i)\nwhile True:\n    break\n",
    "if x is None:\n    raise ValueError('x')\nelse:\n    return [v for v in values]\n",
    "héllo wörld 日本語 😀 emoji\r\n",
]


def build_tiny_checkpoint(out: Path, seed: int = 0) -> Path:
    """Write `out/` as a Hugging Face Qwen2 checkpoint (config, weights, tokenizer.json)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        eos_token_id=tok.token_to_id("<|endoftext|>"),
        bos_token_id=tok.token_to_id("<|endoftext|>"),
    )
    Qwen2ForCausalLM(config).save_pretrained(str(out))
    return out
