"""TF-IDF of word unigrams and bigrams with a multinomial logistic regression (scikit-learn)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from benchmark.cost import measure
from benchmark.learners import register
from benchmark.learners.base import Learner, Recipe, TrainReport
from benchmark.learners.training import hard_labels, require_applicable, require_fitted, soft_label_matrix, split_labels
from benchmark.metrics import classification_scores
from benchmark.synthetic import SyntheticSet
from tasks.data import Record, Split
from tasks.spec import TaskSpec

logger = logging.getLogger(__name__)

# Joins the two sentences of a pair. It is one word for the default token pattern (\w\w+), so
# bigrams across the boundary ("__sep__ the") stay distinct from bigrams inside a sentence.
PAIR_SEPARATOR = " __sep__ "


def _recipe(tier: str, max_iter: int) -> Recipe:
    # L-BFGS runs full-batch without a learning rate or a length cap, so lr, batch_size and
    # max_length are 0, meaning "not used". `steps` is max_iter, the limit on L-BFGS iterations.
    return Recipe(learner="tfidf-logreg", tier=tier, model="tfidf-1-2gram+logreg", steps=max_iter,
                  full_data_steps=max_iter, lr=0.0, batch_size=0, max_length=0, optimizer="lbfgs",
                  schedule="constant", grad_clip=None,
                  options=(("C", 10.0), ("min_df", 1), ("ngram_range", (1, 2)), ("sublinear_tf", True)))


@register
class TfidfLogReg(Learner):
    """Logistic regression on TF-IDF word 1-2 grams, with the vocabulary fitted on the training set only.

    It trains on hard labels; under `native`, records with soft labels use their argmax. L-BFGS on
    this convex loss is deterministic, so the seed is passed on but does not change the model.
    """

    name = "tfidf-logreg"
    families = ("classification", "nli")
    description = ("TF-IDF (word unigrams and bigrams, sublinear term frequency) with an L2-regularized "
                   "multinomial logistic regression fitted by L-BFGS.")
    recipes = {
        "smoke": _recipe("smoke", max_iter=200),
        "quick": _recipe("quick", max_iter=1000),
        "standard": _recipe("standard", max_iter=1000),
    }

    def __init__(self, task: TaskSpec, recipe: Recipe) -> None:
        super().__init__(task, recipe)
        self.vectorizer: TfidfVectorizer | None = None
        self.classifier: LogisticRegression | None = None

    def text(self, record: Record) -> str:
        """Join the record's input fields into one text, with PAIR_SEPARATOR between the sentences of a pair."""
        return PAIR_SEPARATOR.join(str(record.get(name, "")) for name in self.task.input_fields)

    def _labels(self, train: SyntheticSet, native: bool) -> np.ndarray:
        labels = hard_labels(train, self.task.label_field).numpy()
        soft = soft_label_matrix(train, self.task.num_classes) if native else None
        if soft is not None:
            present = ~np.isnan(soft.numpy()).any(axis=1)
            labels[present] = soft.numpy()[present].argmax(axis=1)
        return labels

    def fit(self, train: SyntheticSet, seed: int, *, full_data: bool = False,
            native: bool = False) -> TrainReport:
        require_applicable(self, train)
        recipe = self.recipe
        max_iter = recipe.full_data_steps if full_data else recipe.steps
        labels = self._labels(train, native)
        if len(np.unique(labels)) < 2:
            raise ValueError(f"synthetic set of method {train.method!r} has examples of one class only "
                             f"({self.task.label_names[labels[0]]!r}); {self.name} needs at least two classes")
        logger.info("%s: fitting on %d examples of %s (max_iter %d, %s track)", self.name, len(train),
                    train.method, max_iter, "native" if native else "standard")

        with measure() as cost:
            texts = [self.text(record) for record in train.records]
            vectorizer = TfidfVectorizer(ngram_range=tuple(recipe.option("ngram_range", (1, 2))),
                                         min_df=recipe.option("min_df", 1),
                                         sublinear_tf=recipe.option("sublinear_tf", True))
            features = vectorizer.fit_transform(texts)
            classifier = LogisticRegression(C=recipe.option("C", 10.0), max_iter=max_iter, solver="lbfgs",
                                            random_state=seed)
            classifier.fit(features, labels)
            loss = log_loss(labels, classifier.predict_proba(features), labels=classifier.classes_)

        self.vectorizer, self.classifier = vectorizer, classifier
        tokens = self._count_tokens(texts)
        iterations = int(np.max(classifier.n_iter_))
        logger.info("%s: fitted in %.2f s, %d L-BFGS iterations, training log loss %.4f", self.name,
                    cost.wall_time_s, iterations, loss)
        return TrainReport(wall_time_s=cost.wall_time_s, peak_memory_mb=cost.peak_memory_mb, tokens=tokens,
                           steps=iterations, examples=len(train), losses=[float(loss)])

    def _count_tokens(self, texts: Sequence[str]) -> int:
        analyzer_tokens = self.vectorizer.build_tokenizer()
        preprocess = self.vectorizer.build_preprocessor()
        return sum(len(analyzer_tokens(preprocess(text))) for text in texts)

    def predict(self, split: Split) -> np.ndarray:
        """Class probabilities [n, C] of a split's records; classes absent from training get 0."""
        require_fitted(self, self.classifier is not None)
        probabilities = np.zeros((len(split), self.task.num_classes))
        features = self.vectorizer.transform([self.text(record) for record in split.records])
        probabilities[:, self.classifier.classes_] = self.classifier.predict_proba(features)
        return probabilities

    def evaluate(self, split: Split) -> dict[str, float]:
        predicted = self.predict(split).argmax(axis=1)
        return classification_scores(split_labels(self.task, split), predicted, self.task.num_classes,
                                     self.task.metrics)
