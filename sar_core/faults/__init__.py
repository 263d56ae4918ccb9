"""Fault models, fault patterns (sampling), the injector, activation faults."""
