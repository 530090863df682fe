"""Layer 1: AEAD, KDF, secure memory and key-slot wrapping. Imports nothing else from core."""
