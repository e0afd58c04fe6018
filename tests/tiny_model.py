"""Tiny checkpoints with real trained BPE tokenizers, for fast tests.

`build_tiny_checkpoint`: a random-weight Qwen2 (the default family). `build_tiny_starcoder`:
a GPTBigCode (StarCoder format) whose weights are set so that greedy decoding after its
`<fim_middle>` writes a known answer and then the family's `<filename>` stop token, so a
test can see both the PSM prompt order and the family's stop tokens at work.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

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

# StarCoder's own special tokens (its tokenizer's first ids), in its order.
STARCODER_SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_middle>",
    "<fim_suffix>",
    "<fim_pad>",
    "<filename>",
    "<gh_stars>",
    "<issue_start>",
    "<issue_comment>",
    "<issue_closed>",
    "<jupyter_start>",
    "<jupyter_text>",
    "<jupyter_code>",
    "<jupyter_output>",
    "<empty_output>",
    "<commit_before>",
    "<commit_msg>",
    "<commit_after>",
    "<reponame>",
]

# What the tiny StarCoder writes after `<fim_middle>`: the answer, then `<filename>` (one of
# the family's stop tokens), then LEAK, which shows only if that stop token was not obeyed.
STARCODER_ANSWER = " a + b"
STARCODER_STOP = "<filename>"
STARCODER_LEAK = " LEAK"

CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "import os\nimport sys\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n",
    "for i in range(10):\n    print(i)\nwhile True:\n    break\n",
    "if x is None:\n    raise ValueError('x')\nelse:\n    return [v for v in values]\n",
    "héllo wörld 日本語 😀 emoji\r\n",
]


def _train_tokenizer(special_tokens: list[str], out: Path, **named: str) -> Any:
    """A byte-level BPE trained on CORPUS, saved to `out/` as a fast tokenizer.

    `named`: special token roles beyond the end of text (`bos_token=...`).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", **named)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(out))
    return tok


def build_tiny_checkpoint(out: Path, seed: int = 0) -> Path:
    """Write `out/` as a Hugging Face Qwen2 checkpoint (config, weights, tokenizer.json)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tok = _train_tokenizer(SPECIAL_TOKENS, out)
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


def build_tiny_starcoder(out: Path, seed: int = 0) -> Path:
    """Write `out/` as a Hugging Face GPTBigCode checkpoint that writes a known answer.

    The layers' output projections and the position embeddings are zero, so each position's
    final state is the layer norm of its token's embedding: the next token depends on the
    current one only. Chain tokens get one-hot embeddings and the output row of each
    successor points at its predecessor's state, so greedy decoding after `<fim_middle>`
    follows `STARCODER_ANSWER`, `STARCODER_STOP`, `STARCODER_LEAK`. Every other weight is
    random.
    """
    import torch
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    # StarCoder's start and unknown tokens are its end of text (CTranslate2 needs an unknown).
    tok = _train_tokenizer(
        STARCODER_SPECIAL_TOKENS, out, bos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )
    torch.manual_seed(seed)
    width = 64
    config = GPTBigCodeConfig(
        vocab_size=tok.get_vocab_size(),
        n_positions=4096,
        n_embd=width,
        n_layer=2,
        n_head=4,
        multi_query=True,
        tie_word_embeddings=False,
        eos_token_id=tok.token_to_id("<|endoftext|>"),
        bos_token_id=tok.token_to_id("<|endoftext|>"),
    )
    model = GPTBigCodeForCausalLM(config)
    chain = [
        tok.token_to_id("<fim_middle>"),
        *tok.encode(STARCODER_ANSWER, add_special_tokens=False).ids,
        tok.token_to_id(STARCODER_STOP),
        *tok.encode(STARCODER_LEAK, add_special_tokens=False).ids,
    ]
    if len(set(chain)) != len(chain) or len(chain) > width:
        raise ValueError(f"the answer chain must be distinct tokens, at most {width}: {chain}")
    with torch.no_grad():
        for block in model.transformer.h:
            for proj in (block.attn.c_proj, block.mlp.c_proj):
                proj.weight.zero_()
                proj.bias.zero_()
        model.transformer.wpe.weight.zero_()
        model.lm_head.weight.zero_()
        for i, (token, successor) in enumerate(itertools.pairwise(chain)):
            model.transformer.wte.weight[token] = torch.nn.functional.one_hot(
                torch.tensor(i), width
            ).float()
            state = torch.nn.functional.layer_norm(
                model.transformer.wte.weight[token], (width,), eps=config.layer_norm_epsilon
            )
            model.lm_head.weight[successor] = state / state.norm() * 8.0
    model.save_pretrained(str(out))
    return out
