"""Layer 5: the sync protocol, sessions and transports. Transport-independent at its core."""
