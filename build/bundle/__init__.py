"""What a pipeline ships: its model repository, the server bundle its image carries, the SDK
bundle with its client wheel, and its golden cases."""
