"""The client at the centre: his data from every source in one view, who looked at it, and the consents he gives."""

from node.overview.view import ClientView

__all__ = ["ClientView"]
