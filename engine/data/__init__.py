"""Datasets: the dataset_info.json registry, file readers, and format normalisation."""

from engine.data.errors import DataError
from engine.data.formats import Sample, normalise_row
from engine.data.loader import load_samples, preview_page
from engine.data.registry import DatasetSpec, list_datasets, read_registry, resolve_dataset

__all__ = [
    "DataError", "DatasetSpec", "Sample", "list_datasets", "load_samples", "normalise_row",
    "preview_page", "read_registry", "resolve_dataset",
]
