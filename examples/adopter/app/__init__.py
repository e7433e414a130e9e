"""An existing FastAPI app ("Bigger Applications" layout) that adopts keyscope."""
