"""People: finding a person from a chat, residents and their binding to a building."""
