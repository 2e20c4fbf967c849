"""
One chat on many processes and machines, standing on Redis.

Each node (a C{twistd chat --redis ...} process) keeps its own connections
and delivers to them with L{twisted_chat.core.fanout.LocalFanout}; what the
nodes share goes through Redis:

  - L{twisted_chat.cluster.wire}: the core's events as bytes and back;
  - L{twisted_chat.cluster.address}: the C{--redis} URL;
  - L{twisted_chat.cluster.link}: a connection to Redis that reconnects and
    watches itself with PING (L{Link}), its pub/sub twin (L{Subscriber}),
    and whether the node is connected or degraded (L{Health});
  - L{twisted_chat.cluster.keys}: the names of everything in Redis;
  - L{twisted_chat.cluster.scripts}: the Lua scripts, run by SHA with a
    fallback after a Redis restart;
  - L{twisted_chat.cluster.rooms}: the ordered publish of a room's events
    and their history (a Redis stream per room);
  - L{twisted_chat.cluster.ordering}: per-room delivery in sequence order on
    each node, with gap filling;
  - L{twisted_chat.cluster.directory}: nicknames, guests, who is where;
  - L{twisted_chat.cluster.fanout}: L{RedisFanout}, the
    L{twisted_chat.core.interfaces.IFanout} of one node;
  - L{twisted_chat.cluster.node}: L{ClusterNode}, all of the above put
    together from the C{--redis} URL.

txredisapi is untyped; only L{twisted_chat.cluster._txredis} touches it.
"""
