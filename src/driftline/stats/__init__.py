"""Pure statistics: normal quantiles, reference transforms, calibration, divergences. No I/O."""
