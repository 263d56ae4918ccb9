"""Campaigns and sweeps, loss landscapes, sharpness, the adversarial attack, mitigations."""
