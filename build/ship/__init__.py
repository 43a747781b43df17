"""Images and inputs beyond one machine: registries, input archives as OCI artifacts, Kubernetes
and KServe manifests, and serving an image here."""
