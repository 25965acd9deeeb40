"""What a user looks at: matplotlib figures, highlighted text and the self-contained HTML report (the notebook
object is `analysis.result.Analysis`, run comparison `analysis.compare`)."""
