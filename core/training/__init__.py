"""Training MTMR-Net: datasets, the training generator, metrics."""
