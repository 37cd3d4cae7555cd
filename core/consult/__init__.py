"""议事: consultations and polls, residents' proposals, and who counts as a resident."""
