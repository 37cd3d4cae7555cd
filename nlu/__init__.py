"""gridbot's Rasa NLU components and Chinese dictionaries (loaded inside the Rasa process)."""

from nlu import rasa_patches

rasa_patches.apply()
