"""Tickets: the state machine, the ticket service, who is told of a ticket, categories."""
