"""gridbot's Rasa NLU components and Chinese dictionaries (loaded inside the Rasa process)."""

from nlu import rasa_patches, rasa_speed, tracker_patches

rasa_patches.apply()
tracker_patches.apply()
rasa_speed.apply()
