"""Tiny offline language models for tests, examples and teaching.

Built in code (a byte-level tokenizer and a randomly initialised 2-layer Llama or GPT-2), so they
need no download and run in milliseconds. They exercise every code path of the real models
(chat template, padding, peft adapters, generation) without the cost. torch, tokenizers and
transformers are imported inside the functions, so ``prompt_gym.testing`` stays cheap to import.
"""

from __future__ import annotations

from typing import Any

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


VERBALIZER_WORDS = ("negative", "positive", "neutral")


def build_byte_tokenizer(padding_side: str = "right", chat_template: bool = True) -> Any:
    """A byte-level BPE tokenizer with no merges, built in memory.

    The words of :data:`VERBALIZER_WORDS` with a leading space are single added tokens, so the
    toy and SST-2 verbalizers work with it (262 tokens in all).
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2} | {ch: i + 3 for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", padding_side=padding_side
    )
    tokenizer.add_tokens([AddedToken(" " + word, normalized=False) for word in VERBALIZER_WORDS])
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_lm(tokenizer: Any, arch: str = "llama", seed: int = 0) -> Any:
    """A randomly initialised 2-layer causal LM over ``tokenizer`` (fp32, eval mode): ``"llama"``, ``"gpt2"``, ``"gemma3"``."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    vocab = len(tokenizer)
    if arch == "gemma3":  # a sliding-window layer and a full-attention layer, as in Gemma 3
        from transformers import Gemma3ForCausalLM, Gemma3TextConfig

        config = Gemma3TextConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=6,
                                  layer_types=["sliding_attention", "full_attention"], max_position_embeddings=2048,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                  bos_token_id=None)
        return Gemma3ForCausalLM(config).eval()
    if arch == "gpt2":
        config = GPT2Config(vocab_size=vocab, n_layer=2, n_embd=32, n_head=2, n_positions=1024,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        model = GPT2LMHeadModel(config)
    else:
        config = LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                             bos_token_id=None, tie_word_embeddings=False)
        model = LlamaForCausalLM(config)
    return model.eval()


class CallCountingScorer:
    """Wraps a scorer and counts its ``score_examples`` calls; every other attribute is the scorer's.

    Args:
        scorer: The scorer to wrap.

    Attributes:
        calls: ``score_examples`` calls so far.
    """

    def __init__(self, scorer: Any) -> None:
        self.scorer, self.calls = scorer, 0

    def score_examples(self, prompts: Any, examples: Any) -> Any:
        """The wrapped ``score_examples``, counted."""
        self.calls += 1
        return self.scorer.score_examples(prompts, examples)

    def __getattr__(self, name: str) -> Any:
        if name == "scorer":  # not set yet (copy/pickle): avoid infinite recursion
            raise AttributeError(name)
        return getattr(self.scorer, name)
