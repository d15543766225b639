"""Metrics over the models' contracts: sample quality on shipped feature networks, likelihoods on one
fixed binarized set, the PCA baseline. Nothing here imports a model class."""
