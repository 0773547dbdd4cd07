"""Inference: the predictor (scaling, resize or sliding window, TTA, stacks) and the batch-folder runner."""
from .predictor import Prediction, PredictionCancelled, Predictor, attention_layer_name, split_image

__all__ = ["Prediction", "PredictionCancelled", "Predictor", "attention_layer_name", "split_image"]
