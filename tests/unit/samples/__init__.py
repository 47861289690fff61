"""Unit tests of the fast detector simulation and the process registry."""
