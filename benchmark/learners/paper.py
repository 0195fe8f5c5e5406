"""Paper-scale fine-tuning learners on Hub backbones: `bert-base-finetune` and `roberta-base-finetune`.

They run the same code as `minilm-finetune`, with the standard recipe only (200 AdamW steps at
lr 1e-4, warmup ratio 0.5, linear decay, weight decay 0.01, clip 1.0, batch min(64, set size)).
Their weights come from the Hugging Face Hub, so offline `fit` raises BackboneUnavailableError.
They accept text sets only.
"""

from __future__ import annotations

from benchmark.learners import register
from benchmark.learners.finetune import EncoderFinetuneLearner, standard_recipe


@register
class BertBaseFinetune(EncoderFinetuneLearner):
    name = "bert-base-finetune"
    backbone = "bert-base-uncased"
    description = "Full fine-tuning of bert-base-uncased (12 layers, 110M parameters) from the Hugging Face Hub."
    recipes = {"standard": standard_recipe("bert-base-finetune", "bert-base-uncased")}


@register
class RobertaBaseFinetune(EncoderFinetuneLearner):
    name = "roberta-base-finetune"
    backbone = "roberta-base"
    description = "Full fine-tuning of roberta-base (12 layers, 125M parameters) from the Hugging Face Hub."
    recipes = {"standard": standard_recipe("roberta-base-finetune", "roberta-base")}
