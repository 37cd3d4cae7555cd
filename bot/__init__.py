"""The Telegram front end."""

import os

# python-telegram-bot 22: opt in now to RetryAfter.retry_after as a timedelta
# (the future default), so no deprecation path is exercised.
os.environ.setdefault("PTB_TIMEDELTA", "1")
