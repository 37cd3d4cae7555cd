"""Presentation: cards, texts and callback data, built and parsed in one place."""
