"""SAM / ASAM / SAR optimizers, training configs, fault geometry, calibration, RandBET, train()."""
