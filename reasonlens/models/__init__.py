"""Models: loading (local, hub, GGUF, PEFT, bundled defaults), generation and token scoring.

Submodules import torch and transformers lazily; import them directly
(``from reasonlens.models.loading import load_model``).
"""
