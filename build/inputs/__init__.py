"""The bytes the locks name: fetched from the first place that serves them, re-hashed on every use
and kept in the content store; vendor blobs, wheelhouses, model files and input archives."""
