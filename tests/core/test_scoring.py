import numpy as np
import pytest

from prompt_gym.budget import BudgetedScorer, BudgetExhausted
from prompt_gym.data import Example
from prompt_gym.evaluation import evaluate_prompts
from prompt_gym.models import adapters_disabled
from prompt_gym.rewards import PromptJudge
from prompt_gym.scoring import LMScorer, correct_and_gap, render, verbalizer_token_ids
from prompt_gym.tasks import get_task
from prompt_gym.testing import build_byte_tokenizer, build_tiny_lm
from prompt_gym.toy import RuleScorer

PROMPTS = ["", "Say if the review is positive.", "A much longer prompt that makes the rows differ in length a lot."]
INPUTS = ["good", "a very long and winding review of a film that goes on", "bad movie", "ok"]


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_batched_equals_one_at_a_time(arch, padding_side):
    tokenizer = build_byte_tokenizer(padding_side=padding_side)
    model = build_tiny_lm(tokenizer, arch=arch, seed=1)
    batched = LMScorer(model, tokenizer, ["negative", "positive"], batch_size=5).score(PROMPTS, INPUTS)
    single = LMScorer(model, tokenizer, ["negative", "positive"], batch_size=1)
    for i, prompt in enumerate(PROMPTS):
        for j, source in enumerate(INPUTS):
            np.testing.assert_allclose(batched[i, j], single.score([prompt], [source])[0, 0], atol=1e-4)
    np.testing.assert_allclose(np.exp(batched).sum(-1), 1.0, atol=1e-5)


def test_scores_read_the_next_token_after_the_template(tiny_lm):
    import torch

    model, tokenizer = tiny_lm
    scorer = LMScorer(model, tokenizer, ["negative", "positive"])
    text = render(scorer.template, "p", "x")
    ids = torch.tensor([tokenizer.encode(text)])
    with torch.no_grad():
        logits = model(ids).logits[0, -1, scorer.verbalizer_ids]
    np.testing.assert_allclose(scorer.score(["p"], ["x"])[0, 0], torch.log_softmax(logits, -1).numpy(), atol=1e-5)
    assert scorer.num_evaluations == 1


def test_render_handles_the_empty_prompt():
    assert render("{prompt}\nInput: {input}\nOutput:", "", "x") == "Input: x\nOutput:"
    assert render("{prompt}\nInput: {input}\nOutput:", " Do it. ", "x") == "Do it.\nInput: x\nOutput:"


def test_verbalizer_must_be_single_tokens(byte_tokenizer):
    with pytest.raises(ValueError, match="must be one token"):
        verbalizer_token_ids(byte_tokenizer, ["negative", "great"])
    assert len(verbalizer_token_ids(byte_tokenizer, ["negative", "positive"])) == 2
    # a template ending in a space is followed by the bare word
    with pytest.raises(ValueError, match="'positive'"):
        verbalizer_token_ids(byte_tokenizer, ["positive"], "{prompt} {input} Output: ")


def test_target_reads_base_weights_when_adapters_are_attached(fresh_tiny_lm):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = fresh_tiny_lm
    before = LMScorer(model, tokenizer, ["negative", "positive"]).score(PROMPTS, INPUTS)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    scorer = LMScorer(peft_model, tokenizer, ["negative", "positive"])
    np.testing.assert_allclose(scorer.score(PROMPTS, INPUTS), before, atol=1e-5)
    with adapters_disabled(peft_model):
        pass
    # the adapter is active again afterwards, and changes the output
    import torch

    ids = torch.tensor([tokenizer.encode("hello")])
    with torch.no_grad():
        with_adapter = peft_model(ids).logits
        with adapters_disabled(peft_model):
            without = peft_model(ids).logits
    assert not torch.allclose(with_adapter, without)


def test_rule_scorer_rewards_keywords():
    answers = {"a": 0, "b": 1, "c": 0, "d": 1, "e": 0}
    scorer = RuleScorer(answers, ["negative", "positive"])
    scores = scorer.score(["", "classify the review sentiment positive negative"], list(answers))
    accuracy = (scores.argmax(-1) == np.array(list(answers.values()))).mean(-1)
    assert accuracy[1] == 1.0 and accuracy[0] < 1.0
    assert scorer.competence("Sentiment, REVIEW!") == 2
    with pytest.raises(KeyError, match="no answer"):
        scorer.score(["x"], ["unknown"])


@pytest.mark.slow
def test_real_model_batched_equals_single(real_lm):
    from prompt_gym.tasks import get_task

    model, tokenizer = real_lm
    task = get_task("sst2")
    inputs = [e.input for e in task.split("validation")[:6]]
    prompts = ["", task.manual_prompt]
    batched = LMScorer(model, tokenizer, task.verbalizer, batch_size=12).score(prompts, inputs)
    single = LMScorer(model, tokenizer, task.verbalizer, batch_size=1).score(prompts, inputs)
    np.testing.assert_allclose(batched, single, atol=1e-4)


def _old_reward(name, log_probs, labels):
    """The rewards as computed before score_examples: straight from class log-probabilities."""
    correct, gap = correct_and_gap(log_probs[None], labels)
    accuracy, mean_gap = correct.mean(axis=1)[0], gap.mean(axis=1)[0]
    if name == "accuracy":
        return accuracy
    if name == "margin":
        return (np.where(correct, 2.0, 1.8) * gap).mean(axis=1)[0]
    return 30.0 * accuracy + mean_gap


def test_score_examples_and_rewards_equal_the_log_prob_path(tiny_lm):
    """One call for every target: correctness and gaps (hence rewards) equal those of the class log-probs."""
    model, tokenizer = tiny_lm
    examples = [Example(source, label=i % 2) for i, source in enumerate(INPUTS)]
    prompts = [prompt for prompt in PROMPTS for _ in examples]
    pairs = examples * len(PROMPTS)
    labels = np.array([example.label for example in pairs])
    log_probs = LMScorer(model, tokenizer, ["negative", "positive"], cache_size=0).score_pairs(
        prompts, [example.input for example in pairs])
    scored = LMScorer(model, tokenizer, ["negative", "positive"]).score_examples(prompts, pairs)
    correct, gap = correct_and_gap(log_probs[None], labels)
    np.testing.assert_array_equal(scored.scores, correct[0].astype(float))
    np.testing.assert_allclose(scored.gaps, gap[0], atol=1e-6)
    scorer = LMScorer(model, tokenizer, ["negative", "positive"])
    for name in ("accuracy", "margin", "stableprompt"):
        results = PromptJudge(scorer, name).judge(PROMPTS, [examples] * len(PROMPTS))
        for i, result in enumerate(results):
            rows = slice(i * len(examples), (i + 1) * len(examples))
            assert result["reward"] == pytest.approx(_old_reward(name, log_probs[rows], labels[rows]), abs=1e-6)


def test_evaluate_prompts_equals_the_score_matrix(tiny_lm):
    model, tokenizer = tiny_lm
    task = get_task("toy")
    scorer = LMScorer(model, tokenizer, task.verbalizer, task.template)
    examples = task.split("validation")
    matrix = scorer.score(PROMPTS, [example.input for example in examples])
    correct, gap = correct_and_gap(matrix, np.array([example.label for example in examples]))
    results = evaluate_prompts(scorer, task, PROMPTS, split="validation", chunk_size=3)
    assert [list(r) for r in results] == [["prompt", "split", "metric", "accuracy", "gap", "num_examples"]] * 3
    np.testing.assert_allclose([r["accuracy"] for r in results], correct.mean(axis=1), atol=1e-12)
    np.testing.assert_allclose([r["gap"] for r in results], gap.mean(axis=1), atol=1e-6)


def test_rule_and_budgeted_targets_answer_score_examples():
    task = get_task("toy")
    examples = task.split("train")[:6]
    rule = task.default_scorer(task)
    budgeted = BudgetedScorer(task.default_scorer(task), limit=6)
    prompt = ["classify the review sentiment"] * len(examples)
    direct, through = rule.score_examples(prompt, examples), budgeted.score_examples(prompt, examples)
    np.testing.assert_array_equal(direct.scores, through.scores)
    np.testing.assert_array_equal(direct.gaps, through.gaps)
    assert budgeted.num_evaluations == 6
    with pytest.raises(BudgetExhausted):
        budgeted.score_examples(prompt[:1], examples[:1])
