"""Galaxy Edge Gateway service: push-hub."""
