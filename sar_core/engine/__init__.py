"""The one Monte Carlo core (sample -> apply -> evaluate) and its evaluators."""
