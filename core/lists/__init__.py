"""三张清单: resources, needs and the projects that match them."""
