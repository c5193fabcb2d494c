"""Simulation engines, found through the ``orion.engines`` entry-point group."""
