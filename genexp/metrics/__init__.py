"""Sample-quality metrics on the features of the project's own MNIST classifier."""

from genexp.metrics.mnist_cnn import classifier_path, load_classifier
from genexp.metrics.sample_quality import (
    class_histogram,
    classify,
    frechet_distance,
    generate,
    knn_precision_recall,
    sample_quality,
)

__all__ = [
    "classifier_path",
    "load_classifier",
    "class_histogram",
    "classify",
    "frechet_distance",
    "generate",
    "knn_precision_recall",
    "sample_quality",
]
