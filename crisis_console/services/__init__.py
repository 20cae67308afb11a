"""Services: the console's rules as plain Python over the store (no Flask, no HTTP)."""
