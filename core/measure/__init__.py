"""Measuring a nodule itself: its 3D mask from a marker (segment), the mask's encoding (mask), and the
numbers read from it (measurement: volume, Lung-RADS axes, solid part, HU, pleural contact)."""
