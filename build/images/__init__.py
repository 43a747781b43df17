"""The build graph and each image in it (base, rc, runtimes, pipeline images), built reproducibly
by BuildKit on the engine; tools run in those images."""
