"""The command centre's domain (web/centre is its front end): who may sign in and what they
see, the ticket list and its filters, and the figures the map and the charts draw."""
