"""People and their credentials: `users` (creation, password checks) and `tokens` (API bearer
tokens, stored hashed)."""
