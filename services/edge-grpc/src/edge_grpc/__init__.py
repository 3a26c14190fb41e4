"""Galaxy Edge Gateway service: edge-grpc."""
