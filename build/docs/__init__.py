"""The documentation site: reference pages generated from the declaration models, and the build."""
