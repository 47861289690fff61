"""hls4ml conversion of registered models, emulation checks, precision and resource studies."""

__all__: list[str] = []
