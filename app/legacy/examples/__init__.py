"""Legacy-style code that keyscope serves unchanged through the overlay (see gemini_service)."""
