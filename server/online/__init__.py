"""Online features for the decision API: the store interface the scoring path awaits, and its
backends, in-process memory (one replica) and Redis (several replicas sharing the counts).

``forestgate.server.online.shared`` needs the optional ``redis`` extra and is imported only by a
server configured for it.
"""

from forestgate.server.online.memory import MemoryFeatures
from forestgate.server.online.store import OnlineFeatures

__all__ = ["MemoryFeatures", "OnlineFeatures"]
