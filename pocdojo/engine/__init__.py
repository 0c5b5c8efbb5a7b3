"""The dojo collaboration engine: pure, synchronous logic over pycrdt.

No Ray, no sockets, no database, no clock of its own: a host (one Ray actor per live dojo,
behind the websocket gateway) moves bytes in and out and persists what it is told to.

- `protocol`: the Yjs websocket wire format (y-protocols sync, awareness, auth).
- `awareness`: awareness updates (presence, cursors) and who announced which client.
- `session`: `DojoSession`, one live dojo: document, connections, limits.
- `limits`: `Limits` and the per-connection token bucket.
- `outcome`: what `DojoSession.receive` tells the host to do (`Outcome`, `Close`).
- `origin`: the tag on every applied update, deciding whether it is stored or broadcast.
- `document`: the document layout (root map `files`: path -> text).
- `updates`: the little the engine reads in Yjs updates and state vectors itself.
- `history`: the files as they were at a given time.
- `store`: the `SessionStore` contract a host implements (load, append, snapshot).
"""
