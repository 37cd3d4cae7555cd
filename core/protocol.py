"""Names that cross process boundaries (bot ↔ Rasa ↔ action server); plain constants, no imports,
so that the Rasa environment can read them too."""

# A custom message Rasa adds to its answer when a custom action failed (nlu/rasa_patches.py):
# {"gridbot_action_failed": "<action name>"}. The bot then keeps the message pending and retries.
ACTION_FAILED = "gridbot_action_failed"
