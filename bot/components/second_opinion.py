"""A second opinion from a linear SVM on the same features, averaged with the neural classifiers' rankings.

DIET (intents) and the ResponseSelector (FAQ topics) on the one hand, and a linear model trained on the same
word and character n-grams on the other, make different mistakes on short, colloquial messages: the neural
models overfit rare words, the linear model weighs every n-gram it saw. Averaging their probabilities is
right more often than either alone. Each component sits after the classifier it seconds, reads that
classifier's full ranking (``ranking_length: 0`` there) and rewrites its result; FallbackClassifier after
them judges the combined intent confidence.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import scipy.sparse
import skops.io as sio
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import (
    RESPONSE_SELECTOR_PREDICTION_KEY,
    RESPONSE_SELECTOR_PROPERTY_NAME,
    RESPONSE_SELECTOR_RANKING_KEY,
    RESPONSE_SELECTOR_RESPONSES_KEY,
    RESPONSE_SELECTOR_UTTER_ACTION_KEY,
)
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    INTENT,
    INTENT_NAME_KEY,
    INTENT_RANKING_KEY,
    INTENT_RESPONSE_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

logger = logging.getLogger(__name__)

MODEL_FILE = "svm.skops"
# What the saved model may contain; anything else in the file refuses to load.
TRUSTED_TYPES = ["sklearn.feature_extraction.text.TfidfTransformer", "sklearn.pipeline.Pipeline",
                 "sklearn.svm._classes.LinearSVC", "numpy.float64", "numpy.int64", "numpy.dtype",
                 "scipy.sparse._csr.csr_matrix"]


class SecondOpinion(GraphComponent):
    """The SVM, its training and storage; subclasses say what it learns and whose ranking it joins."""

    @classmethod
    def required_components(cls) -> list[type]:
        # The classifier it seconds must come before it in the pipeline too; Rasa checks this list in the
        # training graph as well, where classifiers are trained side by side, so only featurizers can be named.
        return [Featurizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "svm_weight": 0.6,   # share of the SVM in the average (the neural classifier has the rest)
            "C": 1.0,            # SVM regularisation
            "temperature": 4.0,  # scales SVM decision values (about -1..1) before the softmax
            "ranking_length": 10,
        }

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 svm: Pipeline | None = None, extra: dict[str, Any] | None = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._svm = svm
        self._extra = extra or {}

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> SecondOpinion:
        return cls(config, model_storage, resource)

    def _labelled(self, training_data: TrainingData) -> tuple[list[Message], list[str]]:
        raise NotImplementedError

    def _extra_to_keep(self, training_data: TrainingData) -> dict[str, Any]:
        """What else process() needs from training, stored beside the SVM as JSON."""
        return {}

    def _join(self, message: Message, svm_ranking: dict[str, float]) -> None:
        """Average ``svm_ranking`` (already weighted) into the message's result of the seconded classifier."""
        raise NotImplementedError

    @staticmethod
    def _sentence_features(message: Message) -> scipy.sparse.csr_matrix | None:
        """Every featurizer's sentence vector of the text, sparse ones then dense ones, side by side.

        Read from ``message.features`` directly: ``Message.get_sparse_features`` also combines the
        sequence features, which costs more than the SVM itself.
        """
        sentence = [f for f in message.features if f.attribute == TEXT and f.type == FEATURE_TYPE_SENTENCE]
        sparse = [f.features for f in sentence if f.is_sparse()]
        if not sparse:
            return None
        dense = [scipy.sparse.csr_matrix(f.features) for f in sentence if f.is_dense()]
        return scipy.sparse.hstack([*sparse, *dense], format="csr")

    @classmethod
    def _features(cls, messages: list[Message]) -> tuple[list[Message], scipy.sparse.csr_matrix | None]:
        """The messages that have text features, and their feature rows."""
        rows = [(message, cls._sentence_features(message)) for message in messages if message.get(TEXT)]
        rows = [(message, row) for message, row in rows if row is not None]
        if not rows:
            return [], None
        return [message for message, _ in rows], scipy.sparse.vstack([row for _, row in rows], format="csr")

    def train(self, training_data: TrainingData) -> Resource:
        examples, labels = self._labelled(training_data)
        if len(set(labels)) < 2:
            logger.warning("%s: fewer than two labels to learn; the classifier decides alone", type(self).__name__)
            return self._resource
        self._svm = make_pipeline(TfidfTransformer(sublinear_tf=True),
                                  LinearSVC(C=self.config["C"], class_weight="balanced", random_state=0))
        label_of = {id(example): label for example, label in zip(examples, labels, strict=True)}
        featurized, features = self._features(examples)
        self._svm.fit(features, [label_of[id(example)] for example in featurized])
        with self._model_storage.write_to(self._resource) as model_dir:
            sio.dump(self._svm, model_dir / MODEL_FILE)
            (model_dir / "extra.json").write_text(json.dumps(self._extra_to_keep(training_data), ensure_ascii=False))
        return self._resource

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> SecondOpinion:
        try:
            with model_storage.read_from(resource) as model_dir:
                svm = sio.load(model_dir / MODEL_FILE, trusted=TRUSTED_TYPES)
                extra = json.loads((model_dir / "extra.json").read_text())
        except ValueError:  # nothing was trained: the seconded classifier decides alone
            svm, extra = None, None
        return cls(config, model_storage, resource, svm, extra)

    def process(self, messages: list[Message]) -> list[Message]:
        if self._svm is None:
            return messages
        featurized, features = self._features(messages)
        if features is None:
            return messages
        scores = self._decision_values(features) * self.config["temperature"]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities = self.config["svm_weight"] * scores / scores.sum(axis=1, keepdims=True)
        classes = list(self._svm.classes_)
        for message, row in zip(featurized, probabilities, strict=True):
            self._join(message, dict(zip(classes, row.tolist(), strict=True)))
        return messages

    def _decision_values(self, features: scipy.sparse.csr_matrix) -> np.ndarray:
        """The pipeline's decision values, one column per class, computed from its fitted arrays.

        The same arithmetic as ``Pipeline.decision_function`` (sublinear tf, idf, l2 norm, linear model), without
        scikit-learn's per-call input checks, which on one message take longer than the arithmetic itself.
        """
        tfidf, svm = self._svm[0], self._svm[-1]
        weighted = features.copy()
        weighted.data = np.log(weighted.data) + 1.0 if tfidf.sublinear_tf else weighted.data
        weighted = weighted.multiply(tfidf.idf_).tocsr()
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1))).ravel()
        norms[norms == 0.0] = 1.0
        values = np.asarray(weighted @ svm.coef_.T) / norms[:, None] + svm.intercept_
        return np.hstack([-values, values]) if values.shape[1] == 1 else values  # two classes: one column

    def _averaged(self, svm_ranking: dict[str, float], other: dict[str, float]) -> list[tuple[str, float]]:
        combined = dict(svm_ranking)
        for label, confidence in other.items():
            combined[label] = combined.get(label, 0.0) + (1 - self.config["svm_weight"]) * confidence
        return sorted(combined.items(), key=lambda item: -item[1])


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class IntentEnsemble(SecondOpinion):
    """Seconds DIET: rewrites ``intent`` and ``intent_ranking``."""

    def _labelled(self, training_data: TrainingData) -> tuple[list[Message], list[str]]:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        return examples, [e.get(INTENT) for e in examples]

    def _join(self, message: Message, svm_ranking: dict[str, float]) -> None:
        diet = {e[INTENT_NAME_KEY]: e[PREDICTED_CONFIDENCE_KEY] for e in message.get(INTENT_RANKING_KEY) or []}
        ranking = [{INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: confidence}
                   for name, confidence in self._averaged(svm_ranking, diet)]
        message.set(INTENT, ranking[0], add_to_output=True)
        message.set(INTENT_RANKING_KEY, ranking[: self.config["ranking_length"]], add_to_output=True)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class FaqEnsemble(SecondOpinion):
    """Seconds the ResponseSelector of one retrieval intent: rewrites its chosen response and ranking."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {**SecondOpinion.get_default_config(), "retrieval_intent": "faq"}

    def _labelled(self, training_data: TrainingData) -> tuple[list[Message], list[str]]:
        examples = [e for e in training_data.intent_examples
                    if e.get(INTENT) == self.config["retrieval_intent"] and e.get(INTENT_RESPONSE_KEY) and e.get(TEXT)]
        return examples, [e.get(INTENT_RESPONSE_KEY) for e in examples]

    def _extra_to_keep(self, training_data: TrainingData) -> dict[str, Any]:
        prefix = f"utter_{self.config['retrieval_intent']}/"
        return {"responses": {k: v for k, v in training_data.responses.items() if k.startswith(prefix)}}

    def _join(self, message: Message, svm_ranking: dict[str, float]) -> None:
        selected = (message.get(RESPONSE_SELECTOR_PROPERTY_NAME) or {}).get(self.config["retrieval_intent"])
        if not selected:
            return
        ranking = self._averaged(svm_ranking, {e[INTENT_RESPONSE_KEY]: e[PREDICTED_CONFIDENCE_KEY]
                                               for e in selected[RESPONSE_SELECTOR_RANKING_KEY]})
        key, confidence = ranking[0]
        utter_action = f"utter_{key}"
        selected[RESPONSE_SELECTOR_PREDICTION_KEY] = {
            RESPONSE_SELECTOR_RESPONSES_KEY: self._extra.get("responses", {}).get(utter_action),
            PREDICTED_CONFIDENCE_KEY: confidence,
            INTENT_RESPONSE_KEY: key,
            RESPONSE_SELECTOR_UTTER_ACTION_KEY: utter_action,
        }
        selected[RESPONSE_SELECTOR_RANKING_KEY] = [
            {PREDICTED_CONFIDENCE_KEY: value, INTENT_RESPONSE_KEY: name}
            for name, value in ranking[: self.config["ranking_length"]]]
