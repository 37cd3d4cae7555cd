"""Places: resolving a building, landmark, address or point to its grid."""
