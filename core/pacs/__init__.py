"""PACS connectivity (issue 19): remote nodes, echo, find, retrieve, receive and send.

DIMSE through pynetdicom (``dimse``), DICOMweb through dicomweb-client (``web``); ``client`` picks one
by the node's kind, so callers (CLI, app) never care which. Nothing here imports Qt; long jobs take a
progress callback and a ``cancelled`` callable (``core.util.cancellation``). Errors are ``PacsError``
with a one-line reason that names neither the patient nor a secret.
"""
