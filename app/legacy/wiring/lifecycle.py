"""Install the overlay at start-up and remove it at shutdown (reporting who still reads it)."""

import logging
from typing import TYPE_CHECKING

from keyscope.app.legacy import overlay
from keyscope.app.legacy.wiring import gemini_service
from keyscope.app.legacy.wiring.binding import current_source
from keyscope.providers.gemini import gemini_http_options

if TYPE_CHECKING:
    from keyscope.containers import Container

log = logging.getLogger("keyscope.legacy")


class _BothKeyNamesFilter(logging.Filter):
    """google-genai warns on every client when GOOGLE_API_KEY and GEMINI_API_KEY are both set.
    Under the overlay both always name the same (the user's) key, so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Both GOOGLE_API_KEY and GEMINI_API_KEY are set")


_genai_filter = _BothKeyNamesFilter()
_GENAI_LOGGER = "google_genai._api_client"


def install_legacy_overlay(container: "Container") -> None:
    settings = container.settings()
    container.key_policy()  # platform keys are read from settings before the overlay hides them
    mode = settings.legacy_outside_request or (
        "absent" if settings.is_production else "passthrough"
    )
    overlay.install(current_source, outside_request=overlay.OutsideRequest(mode))
    logging.getLogger(_GENAI_LOGGER).addFilter(_genai_filter)
    gemini_service.configure(gemini_http_options(settings.gemini_base_url, container.http()))
    log.warning(
        "legacy env overlay installed: GEMINI_API_KEY, GOOGLE_API_KEY, EXA_API_KEY and "
        "COPILOTKIT_API_KEY now read the requesting user's key (outside requests: %s)",
        mode,
    )


def uninstall_legacy_overlay() -> None:
    counts = overlay.read_counts()
    if counts:
        busiest = sorted(counts.items(), key=lambda item: -item[1])
        log.info(
            "legacy env overlay reads by call site (move these to injection, then turn the "
            "overlay off): %s",
            ", ".join(f"{site}={n}" for site, n in busiest),
        )
    overlay.uninstall()
    logging.getLogger(_GENAI_LOGGER).removeFilter(_genai_filter)
