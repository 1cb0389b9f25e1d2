"""A second opinion on the intent: a linear SVM on the same features as DIET, averaged with DIET's ranking.

DIET and a linear model trained on the same word and character n-grams make different mistakes on short,
colloquial messages (DIET overfits rare words, the linear model weighs every n-gram it saw); averaging
their probabilities is right more often than either alone. The component sits after DIET in the
pipeline, reads DIET's full ranking (``ranking_length: 0`` there) and rewrites ``intent`` and
``intent_ranking``; FallbackClassifier after it then judges the combined confidence.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse
import skops.io as sio
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.nlu.constants import INTENT, INTENT_NAME_KEY, PREDICTED_CONFIDENCE_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.svm import LinearSVC

logger = logging.getLogger(__name__)

MODEL_FILE = "intent_svm.skops"
# What the saved model may contain; anything else in the file refuses to load.
TRUSTED_TYPES = ["sklearn.feature_extraction.text.TfidfTransformer", "sklearn.pipeline.Pipeline",
                 "sklearn.svm._classes.LinearSVC", "numpy.float64", "numpy.int64", "numpy.dtype",
                 "scipy.sparse._csr.csr_matrix"]


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class IntentEnsemble(GraphComponent):
    """Averages DIET's intent probabilities with a linear SVM's (softmax of its decision values)."""

    @classmethod
    def required_components(cls) -> list[type]:
        # DIET must come before it in the pipeline too; Rasa checks this list in the training graph as well,
        # where classifiers are trained side by side, so only the featurizers can be named here.
        return [Featurizer]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "svm_weight": 0.6,   # share of the SVM in the average (DIET has the rest)
            "C": 1.0,            # SVM regularisation
            "temperature": 4.0,  # scales SVM decision values (about -1..1) before the softmax
            "ranking_length": 10,
        }

    def __init__(self, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
                 svm: Pipeline | None = None) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self._svm = svm

    @classmethod
    def create(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> IntentEnsemble:
        return cls(config, model_storage, resource)

    @staticmethod
    def _features(messages: list[Message]) -> scipy.sparse.csr_matrix:
        """Every featurizer's sentence vector of each message, side by side (as DIET sees the sentence)."""
        rows = []
        for message in messages:
            sparse = message.get_sparse_features(TEXT)[1]
            dense = message.get_dense_features(TEXT)[1]
            parts = [scipy.sparse.csr_matrix(f.features) for f in (sparse, dense) if f is not None]
            rows.append(scipy.sparse.hstack(parts).tocsr())
        return scipy.sparse.vstack(rows).tocsr()

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        labels = [e.get(INTENT) for e in examples]
        if len(set(labels)) < 2:
            logger.warning("IntentEnsemble: fewer than two intents to learn; DIET decides alone")
            return self._resource
        self._svm = make_pipeline(TfidfTransformer(sublinear_tf=True),
                                  LinearSVC(C=self.config["C"], class_weight="balanced", random_state=0))
        self._svm.fit(self._features(examples), labels)
        with self._model_storage.write_to(self._resource) as model_dir:
            sio.dump(self._svm, model_dir / MODEL_FILE)
        return self._resource

    @classmethod
    def load(cls, config: dict[str, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> IntentEnsemble:
        try:
            with model_storage.read_from(resource) as model_dir:
                svm = sio.load(model_dir / MODEL_FILE, trusted=TRUSTED_TYPES)
        except ValueError:  # nothing was trained (no intents): DIET decides alone
            svm = None
        return cls(config, model_storage, resource, svm)

    def _svm_probabilities(self, messages: list[Message]) -> np.ndarray:
        scores = self._svm.decision_function(self._features(messages)) * self.config["temperature"]
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        return scores / scores.sum(axis=1, keepdims=True)

    def process(self, messages: list[Message]) -> list[Message]:
        featurized = [m for m in messages if m.get(TEXT) and m.get_sparse_features(TEXT)[1] is not None]
        if self._svm is None or not featurized:
            return messages
        weight = self.config["svm_weight"]
        classes = list(self._svm.classes_)
        for message, svm_row in zip(featurized, self._svm_probabilities(featurized), strict=True):
            combined = dict(zip(classes, weight * svm_row, strict=True))
            for entry in message.get("intent_ranking") or []:
                combined[entry[INTENT_NAME_KEY]] = combined.get(entry[INTENT_NAME_KEY], 0.0) + (
                    (1 - weight) * entry[PREDICTED_CONFIDENCE_KEY])
            ranking = [{INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: float(confidence)}
                       for name, confidence in sorted(combined.items(), key=lambda item: -item[1])]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking[: self.config["ranking_length"]], add_to_output=True)
        return messages
