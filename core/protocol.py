"""Names that cross process boundaries (bot ↔ Rasa ↔ action server); plain constants, no imports,
so that the Rasa environment can read them too."""

# A custom message Rasa adds to its answer when a custom action failed (nlu/rasa_patches.py):
# {"gridbot_action_failed": "<action name>"}. The bot then keeps the message pending and retries.
ACTION_FAILED = "gridbot_action_failed"
# Metadata key of every resident message the bot sends Rasa: its inbox row id. Rasa answers a
# message it has already answered with the same replies, without running the dialogue again.
INBOX_ID = "inbox_id"
# Set beside INBOX_ID when the bot may have sent this message before (an earlier process, or a
# try whose answer it did not record): only then does Rasa look for an earlier answer, which
# costs a tracker read.
REPLAY = "replay"


def intent_payload(intent: str, **entities: object) -> str:
    """Rasa's intent payload, /intent{"entity":"value"} (bypasses the classifier): the one place
    it is written, for the bot's own messages and the actions' buttons. Only payloads the bot or
    an action built reach Rasa this way; what a user types never does."""
    import json

    return "/" + intent + (json.dumps(entities, ensure_ascii=False, separators=(",", ":")) if entities else "")

# A custom message an action adds to its answer when the resident's words were only a fragment
# ("我们三号楼", "楼道的灯"): {"gridbot_fragment": true}. The bot then joins that message to the
# same person's next one (core/fragments.py), so fragments sent one after another become one report.
FRAGMENT = "gridbot_fragment"
# Metadata key of a message the bot joined from fragments: the inbox ids of the fragments before it.
JOINED = "joined"
