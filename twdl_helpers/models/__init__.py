"""The course's networks, one file per module's family of models."""
__all__: list[str] = []
