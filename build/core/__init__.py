"""Declarations and what every step shares: hpsforge.toml and pipeline.toml models, the project,
settings (every HPSFORGE_* variable), errors and exit codes, files, Debian versions."""
