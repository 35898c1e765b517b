"""Attacks on the service, kept as tests: each one that once worked, and the catalogue that held."""
