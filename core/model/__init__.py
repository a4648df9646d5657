"""The trained model as the reader uses it: patches, checkpoints, versions, inference, Grad-CAM."""
