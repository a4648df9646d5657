"""The one error of ``core.pacs``."""


class PacsError(Exception):
    """A PACS operation failed; the message is one line naming the node and the reason (no PHI, no secret)."""
