"""Property-based fuzz targets (docs/fuzzing.md); selected with ``-m fuzz``."""
