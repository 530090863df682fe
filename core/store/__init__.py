"""Layer 3: the encrypted replica store (SQLCipher), migrations, search, the write path."""
