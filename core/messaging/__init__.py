"""Messaging: inbox, outbox and their delivery state, buttons, open questions, Telegram updates."""
