"""Measure candidate verbalizers of the classification tasks on the default target model.

For each task and candidate (class words + a manual prompt naming them) it reports accuracy and
the fraction of examples predicted as each class, on the balanced 16-shot dev files of seeds 13
and 21 (the tasks' validation data; never test). A verbalizer that predicts one class for
(nearly) every input is "dead" for this model.

    PROMPT_GYM_DATA_DIR=../shared/data python benchmarks/task_suite_verbalizers.py [task ...]
"""

from __future__ import annotations

import sys
import time

import numpy as np

from prompt_gym.models import shared_causal_lm
from prompt_gym.scoring import LMScorer
from prompt_gym.tasks import get_task

_YN = "Does the premise entail the hypothesis? Answer {0} or {1}."
CANDIDATES: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "mrpc": [(("No", "Yes"), "Do the two sentences mean the same thing? Answer Yes or No."),
             (("no", "yes"), "Do the two sentences mean the same thing? Answer yes or no."),
             (("different", "same"), "Do the two sentences mean the same thing? Answer same or different.")],
    "rte": [(("yes", "no"), _YN.format("yes", "no")), (("Yes", "No"), _YN.format("Yes", "No")),
            (("true", "false"), "Is the hypothesis true given the premise? Answer true or false.")],
    "qnli": [(("yes", "no"), "Does the sentence answer the question? Answer yes or no."),
             (("Yes", "No"), "Does the sentence answer the question? Answer Yes or No."),
             (("true", "false"), "Does the sentence answer the question? Answer true or false.")],
    "mnli": [(("Yes", "Maybe", "No"), "Does the premise entail the hypothesis? Answer Yes, Maybe or No."),
             (("yes", "maybe", "no"), "Does the premise entail the hypothesis? Answer yes, maybe or no.")],
    "snli": [(("Yes", "Maybe", "No"), "Does the premise entail the hypothesis? Answer Yes, Maybe or No."),
             (("yes", "maybe", "no"), "Does the premise entail the hypothesis? Answer yes, maybe or no.")],
    "agnews": [(("World", "Sports", "Business", "Tech"),
                "Classify the topic of the news article as World, Sports, Business or Tech.")],
    "yelp": [(("negative", "positive"), "Classify the sentiment of the restaurant review as positive or negative."),
             (("terrible", "great"), "Was the restaurant great or terrible?")],
    "cr": [(("negative", "positive"), "Classify the sentiment of the product review as positive or negative."),
           (("terrible", "great"), "Was the product great or terrible?")],
    "mr": [(("negative", "positive"), "Classify the sentiment of the movie review as positive or negative."),
           (("terrible", "great"), "Was the movie great or terrible?")],
}


def main(names: list[str]) -> None:
    model, tokenizer = shared_causal_lm()
    print("| task | verbalizer | accuracy | predicted share per class | n |")
    print("|---|---|---|---|---|")
    for name in names or list(CANDIDATES):
        examples = get_task(name, seed=13).split("validation") + get_task(name, seed=21).split("validation")
        labels = np.array([e.label for e in examples])
        for words, prompt in CANDIDATES[name]:
            start = time.perf_counter()
            scorer = LMScorer(model, tokenizer, words)
            predicted = scorer.score([prompt], [e.input for e in examples])[0].argmax(axis=1)
            shares = " / ".join(f"{np.mean(predicted == c):.2f}" for c in range(len(words)))
            print(f"| {name} | {'/'.join(words)} | {np.mean(predicted == labels):.3f} | {shares} | {len(labels)} |"
                  f"  <!-- {time.perf_counter() - start:.0f}s -->", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
