"""Provider adapters: thin clients for Gemini, Exa and Copilot Cloud.

This package is a leaf: it imports the standard library, httpx and vendor SDKs, never `app`
or `containers`. `ProviderName` is the vocabulary it shares with the service.
"""

from enum import StrEnum


class ProviderName(StrEnum):
    """The providers whose keys keyscope stores, as they appear in URLs and the database."""

    GEMINI = "gemini"
    EXA = "exa"
    COPILOTKIT = "copilotkit"


__all__ = ["ProviderName"]
