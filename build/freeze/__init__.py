"""Re-resolving the locks: apt through mmdebstrap, hashin, pip-compile in the rc image, PyPI's JSON
API; freeze/resolve.py writes every chosen lock or none."""
