# Shared fixtures (a real Redis-compatible server) for every test tree in the workspace.
pytest_plugins = ["edgecore.testing.pytest_plugin"]
