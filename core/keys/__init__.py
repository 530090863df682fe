"""Layer 2: key providers, key slots on disk, secrets from the OS keyring."""
