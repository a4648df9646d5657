"""One nodule's vocabulary: rating scales and meanings, markers, reader labels, Lung-RADS."""
