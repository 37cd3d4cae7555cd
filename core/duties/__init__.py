"""Duties: recurring sessions, attendance, reminders, volunteer shifts and their reports."""
