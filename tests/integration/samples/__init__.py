"""Integration tests of sample generation with real Pythia8, fastjet and ROOT files."""
