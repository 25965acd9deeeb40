"""Metrics of reasoning dynamics: per-token and per-step statistics, the dynamics table and phase
detection. Pure functions of arrays and (tagged) DataFrames: no model, tokenizer or tagger here."""
