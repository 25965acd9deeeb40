"""Metrics of reasoning dynamics: per-token and per-step statistics, the dynamics table, phase
detection and readers of text-only rollout logs. Pure functions of arrays and DataFrames."""
