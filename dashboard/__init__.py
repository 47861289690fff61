"""The Panel shift-crew dashboard (reads the alert store and live summaries; scores nothing)."""

__all__: list[str] = []
