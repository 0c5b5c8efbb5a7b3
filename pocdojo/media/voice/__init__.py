"""Voice calls: a per-dojo audio room on aiortc (mixing or forwarding), plus the tone and
level analysis helpers its tests and benchmark use."""
