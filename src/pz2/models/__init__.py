"""The embedded default models and their one-time preparation."""

import warnings

# PEFT (0.18-0.21) reads `model.is_gradient_checkpointing` whenever it wraps a model, a property transformers
# 5.2x deprecates: a FutureWarning on every LoRA load that is PEFT's to change, not a user's. Silenced by its
# text only, for every module here that loads a model.
warnings.filterwarnings("ignore", message=r"`is_gradient_checkpointing` is deprecated", category=FutureWarning)
