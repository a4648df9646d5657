"""Phantom chest CT studies: synthetic anatomy and CT noise, with real LIDC nodule shapes embedded.

No real chest CT can be downloaded here, so training, tests and the demo use phantoms: ``anatomy``
renders the chest (body wall, skeleton, mediastinum, upper abdomen, lungs with grown vessel and
bronchial trees) and adds CT-like noise; the nodule modules embed real LIDC-IDRI nodule masks with
their radiologists' ratings. Everything made from them is a research demo.
"""
