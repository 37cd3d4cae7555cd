"""Broadcasts: notices from secretaries and admins to their members and residents."""
