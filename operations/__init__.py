"""Tools for the on-call engineer."""
