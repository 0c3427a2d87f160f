"""Recurrent networks for Keras 3: cells, sequence layers with fast paths, models, text pipeline."""
