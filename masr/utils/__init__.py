"""Small utilities shared by the whole library."""
