"""Admin for the outbox's delivery side: delivery events and suppressed addresses."""
