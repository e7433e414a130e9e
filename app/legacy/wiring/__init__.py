"""The overlay bound to keyscope: middleware, start-up/shutdown, the example legacy service."""
