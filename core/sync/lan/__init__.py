"""LAN peers: clinic CA without a server, pairing, mutual-TLS peer sync, mDNS discovery.

mDNS is only a hint; trust is the clinic CA. See DESIGN.md sections 2-4.
"""
