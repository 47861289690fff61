"""Sample production, normalisation, training loops, evaluation and reports."""

__all__: list[str] = []
