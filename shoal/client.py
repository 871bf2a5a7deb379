"""`shoal.client.Client`: the Python client of the shoal API (implemented in services/client.py).

Re-exports the names of services.client.__all__: Client and the errors it raises.
"""

from services.client import *  # noqa: F403
from services.client import __all__ as __all__
