"""Session reads from a Redis Cluster on each thread's own connection to the key's master.

``RedisCluster`` sends a command through a node lookup, a pool checkout, retry and redirect
handling and event dispatch: about three loopback round trips' worth of CPU (``make
bench``). The store's hot read, one ``GET``, goes instead to the master that
``RedisCluster``'s own slot table names for the key, on this thread's connection to it
(:class:`.ThreadConnections`). Any error there (``MOVED`` or ``ASK``: the slot moved or is
moving; a connection failure or timeout: the master died or stalled; an uncovered slot; an
error answer) sends the same ``GET`` through ``RedisCluster``, which follows the redirect,
learns the new slot table and fails as it always did. So every read is answered by the node
``RedisCluster`` would ask first, or by ``RedisCluster``. Writes always go through it.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .redis_threads import ThreadConnections, set_up

if TYPE_CHECKING:
    from .redis_ha import LazyCluster

__all__ = ["ClusterReads"]

#: Keys whose hash slot is remembered (the node serving a slot is looked up at every read).
SLOTS_REMEMBERED = 4096


class ClusterReads:
    """A :class:`.LazyCluster` whose ``get`` reads on per-thread connections to the key's master."""

    def __init__(self, cluster: LazyCluster) -> None:
        import redis

        self._cluster = cluster
        self._errors = (redis.RedisError, redis.exceptions.RedisClusterException)
        self._nodes: dict[str, ThreadConnections] = {}  # node name -> its threads' connections
        self._slots: dict[str, int] = {}  # key -> its hash slot, which never changes
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        cluster = self._cluster.cluster()
        slot = self._slots.get(name)
        if slot is None:
            slot = self._slot(cluster, name)
        nodes = cluster.nodes_manager.slots_cache.get(slot)  # as RedisCluster.get_node_from_key reads it
        # A node a MOVED just named is in the table before RedisCluster connects it (its settings).
        if nodes and nodes[0].redis_connection is not None:
            try:
                connections = self._nodes.get(nodes[0].name) or self._add(nodes[0])
                return connections.get(name)
            except self._errors:
                pass
        return self._cluster.get(name)

    def set(self, name: str, value: str, ex: int, xx: bool = False) -> Any:
        return self._cluster.set(name, value, ex=ex, xx=xx)

    def delete(self, *names: str) -> Any:
        return self._cluster.delete(*names)

    def master_for(self, key: str, redirect: Exception | None = None) -> Any:
        return self._cluster.master_for(key, redirect)

    def close(self) -> None:
        """Close every node's connections, then the cluster client."""
        with self._lock:
            nodes, self._nodes = self._nodes, {}
        for connections in nodes.values():
            connections.close()
        self._cluster.close()

    def _slot(self, cluster: Any, name: str) -> int:
        """The hash slot of ``name``, remembered (hashing it costs half the rest of the read)."""
        slot = int(cluster.keyslot(name))
        if len(self._slots) >= SLOTS_REMEMBERED:
            self._slots.clear()  # bounded; the next reads hash their keys again
        self._slots[name] = slot
        return slot

    def _add(self, node: Any) -> ThreadConnections:
        """The connections to ``node``, made with the settings ``RedisCluster`` gave it."""
        pool = node.redis_connection.connection_pool
        settings = {**pool.connection_kwargs, "redis_connect_func": set_up}
        with self._lock:
            found = self._nodes.get(node.name)
            if found is None:
                found = self._nodes[node.name] = ThreadConnections(lambda: pool.connection_class(**settings))
            return found
