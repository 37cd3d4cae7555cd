"""Registry: importing the community's places and people, role grants, invites."""
