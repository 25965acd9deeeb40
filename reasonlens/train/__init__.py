"""Training with HICRA and its baselines on TRL's GRPOTrainer; advantages are pure torch."""
