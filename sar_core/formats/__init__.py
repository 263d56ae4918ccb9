"""Number formats: encode / decode, bit anatomy, flips (imports no torch)."""
