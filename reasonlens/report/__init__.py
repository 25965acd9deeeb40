"""What a user looks at: matplotlib figures, the self-contained HTML report, the notebook API, run comparison."""
