"""The `shoal` namespace for users: `from shoal.client import Client` (the code lives in `services`)."""
