"""Model architectures known by their class name, without loading a model (the memory estimate reads them from
config.json; training checks the loaded model's class)."""

from __future__ import annotations

# transformers' own causal-LM classes whose forward is exactly body -> lm_head -> ForCausalLMLoss: the answer-only
# loss (engine.train.fast_loss) is exact for them without its first-batch check (tests/train/test_fast_loss.py).
VERIFIED_ARCHITECTURES = frozenset({
    "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "GemmaForCausalLM",
    "Gemma3ForCausalLM", "Phi3ForCausalLM", "Olmo2ForCausalLM", "SmolLM3ForCausalLM"})
