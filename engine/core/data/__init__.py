"""Datasets: the dataset_info.json registry, file readers, and format normalisation."""

from engine.core.data.errors import DataError
from engine.core.data.formats import Sample, normalise_row
from engine.core.data.loader import (
                                PREVIEW_COLUMNS,
                                check_stage,
                                dataset_files,
                                load_row,
                                load_samples,
                                preview_page,
                                preview_view,
)
from engine.core.data.registry import DatasetSpec, list_datasets, read_registry, resolve_dataset, scan_registry

__all__ = [
    "PREVIEW_COLUMNS", "DataError", "DatasetSpec", "Sample", "check_stage", "dataset_files", "list_datasets",
    "load_row", "load_samples",
    "normalise_row", "preview_page", "preview_view", "read_registry", "resolve_dataset", "scan_registry",
]
