"""Structured reports of a read study: DICOM SR (TID 1500), PDF, CSV and JSON from one content model."""
