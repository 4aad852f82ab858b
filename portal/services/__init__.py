"""Domain logic. Services take a session and plain values and return plain values or models;
nothing here knows about Flask requests."""
