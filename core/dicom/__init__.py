"""DICOM study loading: a header-only catalogue and a fast series loader."""
