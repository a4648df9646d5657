"""Around CTVolume: open a study, non-DICOM volume files, MPR planes, a nodule's location."""
