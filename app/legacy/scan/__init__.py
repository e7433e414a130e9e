"""Static scanner for legacy env reads: see `scanner` (entry points) and `rules` (the fixes)."""

from keyscope.app.legacy.scan.rules import FindingKind
from keyscope.app.legacy.scan.scanner import Finding, scan_path, scan_source

__all__ = ["Finding", "FindingKind", "scan_path", "scan_source"]
