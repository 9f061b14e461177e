"""Torch side: models and tokenizers loaded, adapters attached (LoRA, freeze, full), batched generation."""
