"""Everything outside the gateway: billing, SMS delivery, Redis state."""
