"""Galaxy mock backend: an in-memory stand-in for the game backend the gateway talks to."""
