import numpy as np
import pytest

from prompt_gym.scoring import LMScorer, ScoreCache, render
from prompt_gym.testing import build_byte_tokenizer, build_tiny_lm

VERBALIZER = ["negative", "positive"]
PROMPTS = ["", "Say if the review is positive.", "A longer prompt that makes the rows differ in length."]
INPUTS = ["good", "a very long and winding review of a film that goes on", "bad movie", "ok", "good fun"]


def _one_row_at_a_time(model, tokenizer, scorer, prompts, inputs):
    """Ground truth: each text alone, unpadded, full logits."""
    import torch

    out = np.empty((len(prompts), len(inputs), len(VERBALIZER)))
    for i, prompt in enumerate(prompts):
        for j, source in enumerate(inputs):
            ids = torch.tensor([tokenizer.encode(render(scorer.template, prompt, source))])
            with torch.no_grad():
                logits = model(ids).logits[0, -1, scorer.verbalizer_ids]
            out[i, j] = torch.log_softmax(logits, -1).numpy()
    return out


def _count_forwards(model):
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(1))
    return calls


@pytest.mark.parametrize("arch", ["llama", "gpt2", "gemma3"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_prefix_cache_equals_plain_path(arch, padding_side, batch_size):
    tokenizer = build_byte_tokenizer(padding_side=padding_side)
    model = build_tiny_lm(tokenizer, arch=arch, seed=2)
    plain = LMScorer(model, tokenizer, VERBALIZER, batch_size=batch_size, prefix_cache=False, cache_size=0)
    fast = LMScorer(model, tokenizer, VERBALIZER, batch_size=batch_size, prefix_cache=True, cache_size=0)
    expected = plain.score(PROMPTS, INPUTS)
    got = fast.score(PROMPTS, INPUTS)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    np.testing.assert_allclose(got, _one_row_at_a_time(model, tokenizer, fast, PROMPTS, INPUTS), atol=1e-4)
    # the shared prefix really was skipped: fewer tokens ran (a batch of 1 has nothing to share; the tiny
    # Gemma 3's 6-token sliding window is too short for these rows, so it takes the plain path)
    assert fast.num_forward_tokens < plain.num_forward_tokens or batch_size == 1 or arch == "gemma3"
    assert fast.num_evaluations == plain.num_evaluations == len(PROMPTS) * len(INPUTS)


def test_prefix_cache_on_uneven_pairs(tiny_lm):
    """score_pairs with prompts that have 1, 2 and 4 rows, interleaved, and a repeated input."""
    model, tokenizer = tiny_lm
    prompts = ["p one", "p two", "p one", "p three", "p two", "p three", "p three", "p three"]
    inputs = ["a", "bb", "ccc", "a", "dddd", "eeeee", "a", "ff"]
    plain = LMScorer(model, tokenizer, VERBALIZER, batch_size=3, prefix_cache=False, cache_size=0)
    fast = LMScorer(model, tokenizer, VERBALIZER, batch_size=3, prefix_cache=True, cache_size=0)
    expected = plain.score_pairs(prompts, inputs)
    np.testing.assert_allclose(fast.score_pairs(prompts, inputs), expected, atol=1e-4)


def test_prefix_cache_reads_base_weights_under_adapters(fresh_tiny_lm):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = fresh_tiny_lm
    expected = LMScorer(model, tokenizer, VERBALIZER, prefix_cache=False, cache_size=0).score(PROMPTS, INPUTS)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    got = LMScorer(peft_model, tokenizer, VERBALIZER, prefix_cache=True, cache_size=0).score(PROMPTS, INPUTS)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_prefix_cache_is_on_by_default(tiny_lm):
    model, tokenizer = tiny_lm
    assert LMScorer(model, tokenizer, VERBALIZER).prefix_cache


def test_prefixes_run_in_one_pass_and_suffixes_mix_prompts(tiny_lm):
    """3 prompts x 5 inputs at batch 64: one forward pass for the prefixes, one for all 15 suffixes."""
    model, tokenizer = tiny_lm
    scorer = LMScorer(model, tokenizer, VERBALIZER, batch_size=64, cache_size=0)
    calls = _count_forwards(model)
    scorer.score(PROMPTS, INPUTS)
    assert len(calls) == 2
    calls.clear()
    LMScorer(model, tokenizer, VERBALIZER, batch_size=4, cache_size=0).score(PROMPTS, INPUTS)
    assert len(calls) == 1 + 4  # the 3 prefixes fit one block of 4; 15 suffixes make 4 chunks


def test_rows_sharing_no_prefix_take_the_plain_path(tiny_lm):
    model, tokenizer = tiny_lm
    template = "{input}\n{prompt}\nOutput:"  # rows of one prompt start with their (different) inputs
    plain = LMScorer(model, tokenizer, VERBALIZER, template, prefix_cache=False, cache_size=0)
    fast = LMScorer(model, tokenizer, VERBALIZER, template, cache_size=0)
    inputs = ["good", "bad movie", "ok"]
    np.testing.assert_allclose(fast.score(PROMPTS, inputs), plain.score(PROMPTS, inputs), atol=1e-4)
    assert fast.num_forward_tokens == plain.num_forward_tokens


def test_cache_hits_do_not_call_the_model(tiny_lm):
    model, tokenizer = tiny_lm
    scorer = LMScorer(model, tokenizer, VERBALIZER)
    calls = _count_forwards(model)
    first = scorer.score(PROMPTS, INPUTS)
    used, evaluations = len(calls), scorer.num_evaluations
    assert used > 0 and evaluations == len(PROMPTS) * len(INPUTS) and scorer.cache_hits == 0
    again = scorer.score(PROMPTS, INPUTS)
    assert len(calls) == used  # no forward pass at all
    assert scorer.num_evaluations == evaluations  # cached pairs are not model evaluations
    assert scorer.cache_hits == len(PROMPTS) * len(INPUTS)
    np.testing.assert_array_equal(again, first)
    # a new pair among cached ones runs only the new pair
    scorer.score_pairs([PROMPTS[0], "a new prompt"], [INPUTS[0], INPUTS[0]])
    assert scorer.num_evaluations == evaluations + 1


def test_repeated_pairs_in_one_call_run_once(tiny_lm):
    model, tokenizer = tiny_lm
    scorer = LMScorer(model, tokenizer, VERBALIZER)
    scores = scorer.score_pairs(["p", "p", "q", "p"], ["x", "x", "x", "y"])
    assert scorer.num_evaluations == 3 and scorer.cache_hits == 1
    np.testing.assert_array_equal(scores[0], scores[1])
    assert not np.array_equal(scores[0], scores[2])


def test_cache_off_runs_every_pair(tiny_lm):
    model, tokenizer = tiny_lm
    scorer = LMScorer(model, tokenizer, VERBALIZER, cache_size=0)
    scorer.score(PROMPTS, INPUTS)
    scorer.score(PROMPTS, INPUTS)
    assert scorer.num_evaluations == 2 * len(PROMPTS) * len(INPUTS) and scorer.cache_hits == 0
    with pytest.raises(ValueError, match="cache_size"):
        LMScorer(model, tokenizer, VERBALIZER, cache_size=-1)


def test_score_cache_is_a_bounded_lru():
    cache = ScoreCache(2)
    cache.put(("p", "a"), np.zeros(2))
    cache.put(("p", "b"), np.ones(2))
    assert cache.get(("p", "a")) is not None  # now "b" is the least recently used
    cache.put(("p", "c"), np.ones(2))
    assert len(cache) == 2 and cache.get(("p", "b")) is None and cache.get(("p", "a")) is not None
    with pytest.raises(ValueError, match="max_size"):
        ScoreCache(0)


@pytest.mark.slow
def test_real_model_prefix_cache_equals_plain_on_sst2(real_lm):
    from prompt_gym.tasks import get_task

    model, tokenizer = real_lm
    task = get_task("sst2")
    inputs = [example.input for example in task.split("train")[:8]]
    prompts = ["", task.manual_prompt, "Read the review and tell me: was the movie good or bad?"]
    plain = LMScorer(model, tokenizer, task.verbalizer, batch_size=12, prefix_cache=False, cache_size=0)
    fast = LMScorer(model, tokenizer, task.verbalizer, batch_size=12, prefix_cache=True, cache_size=0)
    expected, got = plain.score(prompts, inputs), fast.score(prompts, inputs)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(-1) == expected.argmax(-1)).all()
    assert fast.num_forward_tokens < plain.num_forward_tokens


def test_prefix_cache_with_sliding_window_layers_when_rows_fit():
    """Gemma 3's sliding-window layers: rows up to half the window take the prefix path, exactly."""
    from transformers import Gemma3ForCausalLM

    tokenizer = build_byte_tokenizer()
    small = build_tiny_lm(tokenizer, arch="gemma3", seed=2)
    config = small.config
    config.sliding_window = 256
    model = Gemma3ForCausalLM(config).eval()
    model.load_state_dict(small.state_dict())
    plain = LMScorer(model, tokenizer, VERBALIZER, batch_size=4, prefix_cache=False, cache_size=0)
    fast = LMScorer(model, tokenizer, VERBALIZER, batch_size=4, prefix_cache=True, cache_size=0)
    np.testing.assert_allclose(fast.score(PROMPTS, INPUTS), plain.score(PROMPTS, INPUTS), atol=1e-4)
    assert fast.num_forward_tokens < plain.num_forward_tokens
