"""Automated explanations of transcoder features: explain → simulate → score.

Pure Python (the ``openai`` client for the LLM path, nothing else): no Django, no torch, so the
web process and the default-queue workers that run explanation jobs stay light (import-linter
enforces it). The loop is OpenAI's automated interpretability (explain a unit from its top
activations, simulate its activations from the explanation alone, score the simulation against
the real ones), with eai-delphi's detection and fuzzing scores beside it:

- ``examples``: a feature's dashboard examples, and the split into the examples an explainer
  sees and the held-out ones it is scored on (never the same).
- ``token_pattern``: an offline, deterministic explainer (shortest left contexts that make the
  feature fire, in the spirit of N2G) that is also an exact simulator and judge.
- ``scoring``: simulation (Pearson correlation), detection and fuzzing (balanced accuracy).
- ``llm``: the same explainer, simulator and judge roles played by any OpenAI-compatible
  chat-completions endpoint.
- ``pipeline``: one call that explains a feature and scores the explanation.
"""
